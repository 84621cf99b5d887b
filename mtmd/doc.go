// Package mtmd is the Go-idiomatic side of llama.cpp's multimodal library:
// load a vision projector (mmproj) for a llama.Model, decode images in Go
// (PNG, JPEG, GIF, WebP, BMP, TIFF — memory-safe, with a pixel limit checked
// from the header before any pixel is decoded; ProbeImage tells what
// decoding will allocate, a MemoryBudget bounds the decodes running at once,
// and Limits.ReducePixels scales a picture down to what the projector uses
// as it is decoded), split a prompt with media
// markers into text and image chunks, encode images into embeddings, and
// evaluate the chunks into a llama.Context. An ImageCache keeps prepared
// images (their chunks and embeddings) so that a known image is neither
// preprocessed nor encoded again.
//
// Projector files are checked with package gguf before mtmd sees them (mtmd
// aborts the process on several kinds of malformed projector), and the
// projector's output width is checked against the text model.
package mtmd
