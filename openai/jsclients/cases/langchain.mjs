// Cases for LangChain JS's ChatOpenAI (@langchain/openai).
import assert from 'node:assert/strict';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage, ToolMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { concat } from '@langchain/core/utils/stream';
import { boundedSchema, plainSchema, weatherArgs } from './env.mjs';

const weather = tool(async () => 'clear', { name: 'get_weather', description: 'The weather in a city', schema: weatherArgs });

const chat = (env, fields = {}) =>
  new ChatOpenAI({ model: env.model, apiKey: env.apiKey, configuration: { baseURL: env.baseURL }, maxRetries: 0, maxTokens: 8, ...fields });

export default [
  {
    name: 'langchain.invoke',
    run: async (env) => {
      const m = await chat(env).invoke('Say hello.');
      assert.equal(typeof m.content, 'string');
      assert.ok(m.usage_metadata.input_tokens > 0);
    },
  },
  {
    name: 'langchain.stream',
    run: async (env) => {
      const whole = await chat(env, { temperature: 0 }).invoke('Count.');
      let text = '';
      for await (const chunk of await chat(env, { temperature: 0 }).stream('Count.')) text += chunk.content;
      assert.equal(text, whole.content);
    },
  },
  {
    name: 'langchain.image',
    run: async (env) => {
      const m = await chat(env, { maxTokens: 4 }).invoke([
        new HumanMessage({ content: [{ type: 'image_url', image_url: { url: env.image } }, { type: 'text', text: 'What is here?' }] }),
      ]);
      const t = await chat(env, { maxTokens: 4 }).invoke('What is here?');
      assert.ok(m.usage_metadata.input_tokens > t.usage_metadata.input_tokens, 'the picture adds tokens to the prompt');
    },
  },
  {
    name: 'langchain.logprobs',
    run: async (env) => {
      const m = await chat(env, { logprobs: true, topLogprobs: 2, maxTokens: 4 }).invoke('Hi.');
      const content = m.response_metadata.logprobs.content;
      assert.equal(content.length, m.usage_metadata.output_tokens);
      assert.equal(content[0].top_logprobs.length, 2);
    },
  },
  {
    name: 'langchain.logit_bias',
    run: async (env) => {
      const m = await chat(env, { temperature: 0, maxTokens: 3, logitBias: { [env.forceToken]: 100 } }).invoke('Hi.');
      assert.equal(m.content, env.forcePiece.repeat(3));
    },
  },
  {
    name: 'langchain.n',
    run: async (env) => {
      const r = await chat(env, { n: 2, maxTokens: 4 }).generate([[new HumanMessage('Hi.')]]);
      assert.equal(r.generations[0].length, 2);
    },
  },
  {
    name: 'langchain.withStructuredOutput-plain',
    run: async (env) => {
      const o = await chat(env, { maxTokens: 400 }).withStructuredOutput(plainSchema).invoke('Answer in JSON.');
      assert.equal(typeof o.sure, 'boolean');
    },
  },
  {
    name: 'langchain.withStructuredOutput-bounds',
    needs: ['schema'],
    run: async (env) => {
      for (let i = 0; i < 4; i++) {
        const o = await chat(env, { maxTokens: 400, temperature: 1 }).withStructuredOutput(boundedSchema).invoke('Describe a person.');
        assert.ok(o.name.length <= 20, `try ${i}`);
      }
    },
  },
  {
    // bindTools with a zod tool and a picture; the call, run by the tool,
    // goes back as a ToolMessage and a named call is streamed.
    name: 'langchain.bindTools-image',
    run: async (env) => {
      const m = chat(env, { maxTokens: 200 }).bindTools([weather], { tool_choice: 'required', parallel_tool_calls: false });
      const messages = [new HumanMessage({ content: [{ type: 'image_url', image_url: { url: env.image } }, { type: 'text', text: 'Weather where this is?' }] })];
      const ai = await m.invoke(messages, { seed: 7 });
      assert.equal(ai.tool_calls.length, 1);
      assert.equal(ai.tool_calls[0].name, 'get_weather');
      weatherArgs.parse(ai.tool_calls[0].args);
      const result = await weather.invoke(ai.tool_calls[0]);
      assert.ok(result instanceof ToolMessage);
      messages.push(ai, result);
      const named = chat(env, { maxTokens: 200 }).bindTools([weather], { tool_choice: 'get_weather', parallel_tool_calls: false });
      let whole;
      for await (const chunk of await named.stream(messages, { seed: 8 })) whole = whole === undefined ? chunk : concat(whole, chunk);
      assert.equal(whole.tool_calls.length, 1);
      assert.equal(whole.tool_calls[0].name, 'get_weather');
      weatherArgs.parse(whole.tool_calls[0].args);
    },
  },
];
