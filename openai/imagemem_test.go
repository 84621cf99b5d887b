package openai_test

import (
	"encoding/base64"
	"encoding/json"
	"image/color"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/imagetest"
	"github.com/vlm-go/vlm/openai"
	"github.com/vlm-go/vlm/pipeline"
)

// TestImagesOverTheRequestBound: a request whose images need more memory
// than pipeline.Options.MaxImageBytes gets 413 image_too_large naming the
// figures, and the server goes on answering.
func TestImagesOverTheRequestBound(t *testing.T) {
	s := newServer(t, pipeline.Options{MaxImageBytes: 64 << 20}, openai.Options{MaxTokens: 8})
	url := "data:image/png;base64," + base64.StdEncoding.EncodeToString(imagetest.SolidPNG(7000, 7000, color.RGBA{200, 0, 0, 255}))
	part := `{"type":"image_url","image_url":{"url":"` + url + `"}}`
	code, body := s.post(t, `{"messages":[{"role":"user","content":[`+part+`,`+part+`,{"type":"text","text":"x"}]}]}`, testKey)
	require.Equal(t, 413, code, body)
	var e struct {
		Error struct {
			Message, Type, Code, Param string
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	assert.Equal(t, "image_too_large", e.Error.Code)
	assert.Equal(t, "invalid_request_error", e.Error.Type)
	assert.Contains(t, e.Error.Message, "2 images need")
	assert.Contains(t, e.Error.Message, "png image 7000×7000 (49000000 pixels), 199145728 bytes to decode")
	assert.Contains(t, e.Error.Message, "over the request limit of 67108864 bytes")

	small := `{"type":"image_url","image_url":{"url":"` + pngDataURL(t, 32, 32, 5) + `"}}`
	code, body = s.post(t, `{"messages":[{"role":"user","content":[`+small+`,{"type":"text","text":"x"}]}],"max_tokens":2}`, testKey)
	assert.Equal(t, 200, code, body)
}
