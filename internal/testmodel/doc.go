// Package testmodel writes small, valid, deterministic GGUF pairs — a text
// model and a vision projector (mmproj) — that the pinned llama.cpp and mtmd
// load and run, so that vlm's tests and benchmarks never download a model.
//
// A [Spec] describes a pair: the text model ([TextConfig], general.architecture
// "llama" — "qwen2vl", with M-RoPE, for the Qwen2-VL family — with a
// SentencePiece-style vocabulary, byte fallback, the special tokens its
// projector family needs and the family's real chat template), the projector
// ([ProjectorConfig]: "mlp" as in LLaVA-1.5, "idefics3" as in SmolVLM,
// "gemma3", "qwen2vl_merger" as in Qwen2-VL, "qwen2.5vl_merger" and
// "qwen2.5o" as in Qwen2.5-VL and -Omni, "qwen3vl_merger" as in Qwen3-VL;
// the Qwen mergers pair with the "qwen2vl" text architecture), the tensor type of the 2-D
// weights (F32, F16 or Q8_0) and a seed. The weights are seeded random
// numbers scaled so that activations stay finite; the same Spec always gives
// byte-identical files, a different seed gives different weights. Random
// weights give meaningless text: tests check mechanics and determinism, not
// meaning.
//
// [Preset] returns named specs: "tiny" variants that load and generate in a
// fraction of a second (for tests), and "smolvlm-256m", the shapes of
// SmolVLM-256M-Instruct (hundreds of MB, for honest speed measurements).
// [Write] writes a pair into a directory; [Ensure] writes it into a cache
// directory under a content-addressed name only when missing; [DemoPair]
// and [TinyPair] are the shortcuts for examples and tests.
//
// A Spec also predicts what llama.cpp and mtmd will report for the files:
// [Spec.ImageChunks] and [Spec.ImageTokens] (embeddings per image),
// [Spec.ImageGrid] and [Spec.ImagePositions] (token grid and KV positions,
// which differ for M-RoPE),
// [Spec.TextParams] and [Spec.ProjectorParams] (parameter counts),
// [Spec.ModelFileSize] and [Spec.ProjectorFileSize] (exact file sizes) and
// [Spec.Vocabulary] (tokens and special ids).
package testmodel
