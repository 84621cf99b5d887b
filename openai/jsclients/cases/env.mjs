// What the Go test passes to the cases, from the environment.
export const env = {
  baseURL: process.env.VLM_BASE_URL, // the server's /v1
  apiKey: process.env.VLM_API_KEY,
  model: process.env.VLM_MODEL,
  image: process.env.VLM_IMAGE, // a small PNG as a data: URL
  // A token the logit_bias cases force (+100) with greedy decoding: its id
  // and its text, which the answer repeats max_tokens times.
  forceToken: process.env.VLM_FORCE_TOKEN,
  forcePiece: process.env.VLM_FORCE_PIECE,
};

// The schemas of the structured-output cases: bounds a zod client checks
// on the answer (the failing example), and a plain one whose
// answers are short (a test model's random strings would otherwise run
// past max_tokens).
import { z } from 'zod';
export const boundedSchema = z.object({
  name: z.string().max(20),
  age: z.number().int().min(0).max(120),
  score: z.number().min(0).max(1),
});
export const plainSchema = z.object({
  answer: z.enum(['yes', 'no', 'maybe']),
  sure: z.boolean(),
  note: z.string().max(16),
});

// The tool of the tool-call cases: an enum and a bounded integer keep a
// random model's arguments short and checkable.
export const weatherArgs = z.object({
  city: z.enum(['Paris', 'Rome']),
  days: z.number().int().min(1).max(7),
});
export const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city for the next days',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', enum: ['Paris', 'Rome'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
      required: ['city', 'days'],
      additionalProperties: false,
    },
  },
};
