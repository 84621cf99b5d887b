// Package miniaudio holds vlm's own stand-in headers for what the pinned module's zip leaves
// out of llama.cpp's vendor/ folder. It has no Go code: it exists so that
// go mod vendor copies the headers (it copies only folders with a Go package).
package miniaudio
