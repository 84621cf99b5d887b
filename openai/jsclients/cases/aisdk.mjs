// Cases for the Vercel AI SDK ("ai") with its OpenAI-compatible provider.
import assert from 'node:assert/strict';
import { generateObject, generateText, streamText } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { boundedSchema, plainSchema } from './env.mjs';

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
  // Tool calls go here (the tools branch): generateText with tools (and
  // a picture), toolChoice 'required' / a named tool; needs: ['tools'].
];
