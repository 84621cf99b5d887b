// Cases for openai-node (the official client, package "openai").
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { boundedSchema, plainSchema, weatherArgs, weatherTool } from './env.mjs';

const client = (env) => new OpenAI({ baseURL: env.baseURL, apiKey: env.apiKey, maxRetries: 0 });
const user = (text) => [{ role: 'user', content: text }];

export default [
  {
    name: 'openai.chat',
    run: async (env) => {
      const r = await client(env).chat.completions.create({ model: env.model, messages: user('Say hello.'), max_tokens: 8 });
      assert.equal(r.choices.length, 1);
      assert.equal(typeof r.choices[0].message.content, 'string');
      assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
      assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    },
  },
  {
    name: 'openai.stream',
    run: async (env) => {
      const params = { model: env.model, messages: user('Count.'), max_tokens: 8, temperature: 0 };
      const whole = await client(env).chat.completions.create(params);
      const stream = await client(env).chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
      let text = '';
      let usage;
      for await (const chunk of stream) {
        for (const c of chunk.choices) text += c.delta.content ?? '';
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, whole.choices[0].message.content);
      assert.equal(usage.total_tokens, whole.usage.total_tokens);
    },
  },
  {
    name: 'openai.image',
    run: async (env) => {
      const c = client(env);
      const text = await c.chat.completions.create({ model: env.model, messages: user('What is here?'), max_tokens: 4 });
      const r = await c.chat.completions.create({
        model: env.model, max_tokens: 4,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: env.image } }, { type: 'text', text: 'What is here?' }] }],
      });
      assert.ok(r.usage.prompt_tokens > text.usage.prompt_tokens, 'the picture adds tokens to the prompt');
    },
  },
  {
    name: 'openai.logprobs',
    run: async (env) => {
      const r = await client(env).chat.completions.create({
        model: env.model, messages: user('Hi.'), max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3,
      });
      const content = r.choices[0].logprobs.content;
      assert.equal(content.length, r.usage.completion_tokens);
      for (const e of content) {
        assert.ok(e.logprob <= 0);
        assert.ok(Array.isArray(e.bytes));
        assert.equal(e.top_logprobs.length, 3);
        assert.equal(e.top_logprobs[0].token, e.token, 'greedy picks the likeliest');
      }
    },
  },
  {
    name: 'openai.logprobs-stream',
    run: async (env) => {
      const stream = await client(env).chat.completions.create({
        model: env.model, messages: user('Hi.'), max_tokens: 5, logprobs: true, top_logprobs: 1, stream: true,
        stream_options: { include_usage: true },
      });
      let n = 0;
      let usage;
      for await (const chunk of stream) {
        for (const c of chunk.choices) n += c.logprobs?.content?.length ?? 0;
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(n, usage.completion_tokens, 'every token has its logprob in some chunk');
    },
  },
  {
    name: 'openai.logit_bias',
    run: async (env) => {
      const r = await client(env).chat.completions.create({
        model: env.model, messages: user('Hi.'), max_tokens: 3, temperature: 0, logit_bias: { [env.forceToken]: 100 },
      });
      assert.equal(r.choices[0].message.content, env.forcePiece.repeat(3));
      await assert.rejects(
        client(env).chat.completions.create({ model: env.model, messages: user('Hi.'), logit_bias: { [env.forceToken]: 101 } }),
        (e) => e.status === 400 && e.param === 'logit_bias',
      );
    },
  },
  {
    name: 'openai.n',
    run: async (env) => {
      const c = client(env);
      const r = await c.chat.completions.create({ model: env.model, messages: user('Tell me.'), max_tokens: 6, n: 3, seed: 5 });
      assert.deepEqual(r.choices.map((x) => x.index), [0, 1, 2]);
      const one = await c.chat.completions.create({ model: env.model, messages: user('Tell me.'), max_tokens: 6, seed: 5 });
      assert.equal(r.usage.prompt_tokens, one.usage.prompt_tokens, 'the prompt is counted once');
      const stream = await c.chat.completions.create({ model: env.model, messages: user('Tell me.'), max_tokens: 6, n: 3, seed: 5, stream: true });
      const texts = ['', '', ''];
      for await (const chunk of stream) for (const x of chunk.choices) texts[x.index] += x.delta.content ?? '';
      assert.deepEqual(texts, r.choices.map((x) => x.message.content));
    },
  },
  {
    name: 'openai.completions-logprobs',
    run: async (env) => {
      const r = await client(env).completions.create({ model: env.model, prompt: 'Once upon a time', max_tokens: 4, logprobs: 2, n: 2, seed: 1 });
      assert.equal(r.choices.length, 2);
      for (const c of r.choices) {
        assert.equal(c.logprobs.tokens.length, c.logprobs.token_logprobs.length);
        assert.equal(c.logprobs.top_logprobs.length, c.logprobs.tokens.length);
      }
    },
  },
  {
    name: 'openai.parse-zod-plain',
    run: async (env) => {
      const r = await client(env).chat.completions.parse({
        model: env.model, messages: user('Answer in JSON.'), max_tokens: 400, temperature: 1,
        response_format: zodResponseFormat(plainSchema, 'answer'),
      });
      assert.ok(r.choices[0].message.parsed, 'parsed by zod');
    },
  },
  {
    name: 'openai.parse-zod-bounds',
    needs: ['schema'],
    run: async (env) => {
      for (let seed = 1; seed <= 4; seed++) {
        const r = await client(env).chat.completions.parse({
          model: env.model, messages: user('Describe a person in JSON.'), max_tokens: 400, temperature: 1, seed,
          response_format: zodResponseFormat(boundedSchema, 'person'),
        });
        assert.ok(r.choices[0].message.parsed, `seed ${seed}: parsed by zod`);
      }
    },
  },
  {
    // A picture and a required call; the call and its result go back and
    // a named call is streamed.
    name: 'openai.tools-image',
    run: async (env) => {
      const c = client(env);
      const messages = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: env.image } }, { type: 'text', text: 'Where is this? Get its weather.' }] }];
      const r = await c.chat.completions.create({
        model: env.model, messages, tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 200, seed: 1,
      });
      const choice = r.choices[0];
      assert.equal(choice.finish_reason, 'tool_calls');
      assert.equal(choice.message.tool_calls.length, 1);
      const call = choice.message.tool_calls[0];
      assert.equal(call.type, 'function');
      assert.equal(call.function.name, 'get_weather');
      weatherArgs.parse(JSON.parse(call.function.arguments));
      messages.push(choice.message, { role: 'tool', tool_call_id: call.id, content: '{"sky": "clear"}' });
      const stream = await c.chat.completions.create({
        model: env.model, messages, tools: [weatherTool], parallel_tool_calls: false, max_tokens: 200, seed: 2, stream: true,
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
      });
      const calls = [];
      let finish;
      for await (const chunk of stream) {
        for (const x of chunk.choices) {
          for (const d of x.delta.tool_calls ?? []) {
            calls[d.index] ??= { id: '', name: '', arguments: '' };
            calls[d.index].id += d.id ?? '';
            calls[d.index].name += d.function?.name ?? '';
            calls[d.index].arguments += d.function?.arguments ?? '';
          }
          finish = x.finish_reason ?? finish;
        }
      }
      assert.equal(finish, 'tool_calls');
      assert.equal(calls.length, 1);
      assert.equal(calls[0].name, 'get_weather');
      weatherArgs.parse(JSON.parse(calls[0].arguments));
    },
  },
  {
    // openai-node's own helpers: parse with zodFunction (strict) and
    // runTools, which runs the function and sends its result back.
    name: 'openai.tools-zodFunction-runTools',
    run: async (env) => {
      const c = client(env);
      const r = await c.chat.completions.parse({
        model: env.model, messages: user('Weather in Rome?'), max_tokens: 200, seed: 3, parallel_tool_calls: false,
        tools: [zodFunction({ name: 'get_weather', parameters: weatherArgs })], tool_choice: 'required',
      });
      const parsed = r.choices[0].message.tool_calls[0].function.parsed_arguments;
      assert.ok(['Paris', 'Rome'].includes(parsed.city));
      let ran = 0;
      const runner = c.chat.completions.runTools({
        model: env.model, messages: user('Weather in Rome?'), max_tokens: 200, seed: 4, parallel_tool_calls: false,
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
        tools: [{
          type: 'function',
          function: { name: 'get_weather', parameters: weatherTool.function.parameters, parse: JSON.parse, function: (args) => { ran++; weatherArgs.parse(args); return 'clear'; } },
        }],
      }, { maxChatCompletions: 2 });
      let err;
      await runner.finalChatCompletion().catch((e) => { err = e; }); // the named choice asks again; two rounds are enough
      assert.ok(ran >= 1, `runTools ran the function (${err})`);
    },
  },
];
