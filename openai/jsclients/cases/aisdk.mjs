// Cases for the Vercel AI SDK ("ai") with its OpenAI-compatible provider.
import assert from 'node:assert/strict';
import { generateObject, generateText, streamText, tool } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { boundedSchema, plainSchema, weatherArgs } from './env.mjs';

// supportsStructuredOutputs: what a user sets for a server that honours
// response_format json_schema (without it generateObject sends
// json_object and the schema only as a hint).
const model = (env) =>
  createOpenAICompatible({ name: 'vlm', baseURL: env.baseURL, apiKey: env.apiKey, supportsStructuredOutputs: true }).chatModel(env.model);

const pngBytes = (env) => Buffer.from(env.image.slice(env.image.indexOf(',') + 1), 'base64');

export default [
  {
    name: 'aisdk.generateText',
    run: async (env) => {
      const r = await generateText({ model: model(env), prompt: 'Say hello.', maxOutputTokens: 8, maxRetries: 0 });
      assert.equal(typeof r.text, 'string');
      assert.ok(['stop', 'length'].includes(r.finishReason), r.finishReason);
      assert.ok(r.usage.inputTokens > 0);
    },
  },
  {
    name: 'aisdk.streamText',
    run: async (env) => {
      const opts = { model: model(env), prompt: 'Count.', maxOutputTokens: 8, temperature: 0, maxRetries: 0 };
      const whole = await generateText(opts);
      const s = streamText(opts);
      let text = '';
      for await (const t of s.textStream) text += t;
      assert.equal(text, whole.text);
    },
  },
  {
    name: 'aisdk.image',
    run: async (env) => {
      const r = await generateText({
        model: model(env), maxOutputTokens: 4, maxRetries: 0,
        messages: [{ role: 'user', content: [{ type: 'image', image: pngBytes(env), mediaType: 'image/png' }, { type: 'text', text: 'What is here?' }] }],
      });
      const t = await generateText({ model: model(env), prompt: 'What is here?', maxOutputTokens: 4, maxRetries: 0 });
      assert.ok(r.usage.inputTokens > t.usage.inputTokens, 'the picture adds tokens to the prompt');
    },
  },
  {
    name: 'aisdk.generateObject-plain',
    run: async (env) => {
      const r = await generateObject({ model: model(env), schema: plainSchema, prompt: 'Answer in JSON.', maxOutputTokens: 400, maxRetries: 0 });
      assert.equal(typeof r.object.sure, 'boolean');
    },
  },
  {
    name: 'aisdk.generateObject-bounds',
    needs: ['schema'],
    run: async (env) => {
      for (let seed = 1; seed <= 4; seed++) {
        const r = await generateObject({ model: model(env), schema: boundedSchema, prompt: 'Describe a person.', maxOutputTokens: 400, seed, maxRetries: 0 });
        assert.ok(r.object.age >= 0 && r.object.age <= 120, `seed ${seed}`);
      }
    },
  },
  {
    // generateText with a tool and a picture: the call comes back parsed
    // by the SDK against the zod schema, and the SDK runs it.
    name: 'aisdk.generateText-tools',
    run: async (env) => {
      let ran = 0;
      const weather = tool({ description: 'The weather in a city', inputSchema: weatherArgs, execute: async () => { ran++; return 'clear'; } });
      const r = await generateText({
        model: model(env), maxOutputTokens: 200, seed: 5, maxRetries: 0, tools: { get_weather: weather }, toolChoice: 'required',
        providerOptions: { vlm: { parallel_tool_calls: false } },
        messages: [{ role: 'user', content: [{ type: 'image', image: pngBytes(env), mediaType: 'image/png' }, { type: 'text', text: 'Weather where this is?' }] }],
      });
      assert.equal(r.finishReason, 'tool-calls');
      assert.equal(r.toolCalls.length, 1);
      assert.equal(r.toolCalls[0].toolName, 'get_weather');
      weatherArgs.parse(r.toolCalls[0].input);
      assert.equal(ran, 1);
      assert.equal(r.toolResults[0].output, 'clear');
    },
  },
  {
    name: 'aisdk.streamText-named-tool',
    run: async (env) => {
      const s = streamText({
        model: model(env), maxOutputTokens: 200, seed: 6, maxRetries: 0, prompt: 'Weather in Paris?',
        tools: { get_weather: tool({ description: 'The weather in a city', inputSchema: weatherArgs }) },
        toolChoice: { type: 'tool', toolName: 'get_weather' }, providerOptions: { vlm: { parallel_tool_calls: false } },
      });
      const calls = [];
      for await (const part of s.fullStream) {
        if (part.type === 'tool-call') calls.push(part);
        if (part.type === 'error') throw part.error;
      }
      assert.equal(calls.length, 1);
      assert.equal(calls[0].toolName, 'get_weather');
      weatherArgs.parse(calls[0].input);
      assert.equal(await s.finishReason, 'tool-calls');
    },
  },
];
