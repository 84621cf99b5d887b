package openai

import (
	"context"
	"testing"
)

// FuzzChatRequest: any body either becomes the pipeline's input or gets a
// 4xx; nothing panics, and the bounds hold for what is accepted.
func FuzzChatRequest(f *testing.F) {
	for _, seed := range []string{
		`{"messages":[{"role":"user","content":"hi"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],"stop":["x","y"],"max_tokens":3}`,
		`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"a":{"type":"integer"}}}}}}`,
		`{"messages":[{"role":"user","content":"a"}],"stop":"` + string(make([]byte, 600)) + `"}`,
		`{"messages":[[[[[[[[[[`,
		`{"messages":[{"role":"developer","content":"d"},{"role":"user","content":"u"}],"temperature":2,"top_p":1,"seed":-1}`,
	} {
		f.Add([]byte(seed))
	}
	h := &Handler{opts: Options{MaxImages: 2, MaxTokens: 64, MaxMessages: 8, RemoteImageTimeout: 1}}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, aerr := h.parse(body)
		if aerr != nil {
			if aerr.status < 400 || aerr.status > 499 {
				t.Fatalf("status %d for %q", aerr.status, body)
			}
			return
		}
		if len(req.Messages) == 0 || len(req.Messages) > 8 {
			t.Fatalf("%d messages accepted", len(req.Messages))
		}
		in, gen, aerr := h.prepare(context.Background(), req)
		if aerr != nil {
			if aerr.status < 400 || aerr.status > 499 {
				t.Fatalf("status %d for %q", aerr.status, body)
			}
			return
		}
		if len(in.Images) > 2 || gen.MaxTokens < 1 || gen.MaxTokens > 64 || len(gen.Stop) > 4 {
			t.Fatalf("bounds broken: %d images, max_tokens %d, %d stops", len(in.Images), gen.MaxTokens, len(gen.Stop))
		}
		for _, s := range gen.Stop {
			if len(s) > maxStopBytes {
				t.Fatalf("a stop string of %d bytes", len(s))
			}
		}
	})
}
