package openai

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/sampler/jsonschema"
	"github.com/vlm-go/vlm/template"
	"github.com/vlm-go/vlm/toolcall"
)

// chatRequest is the body of POST /v1/chat/completions. Fields a client
// sends that do not change the answer (user, metadata, store, ...) are
// ignored; those that would and are not supported are refused.
type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	sampling
	ResponseFormat *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
			Strict *bool           `json:"strict"`
		} `json:"json_schema"`
	} `json:"response_format"`

	// Tools (tools.go).
	Tools             json.RawMessage `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`

	// Choices, log-probabilities, logit bias (choices.go).
	N           *int            `json:"n"`
	Logprobs    *bool           `json:"logprobs"`
	TopLogprobs *int            `json:"top_logprobs"`
	LogitBias   json.RawMessage `json:"logit_bias"`
	choices     choiceOptions   // the four above, checked by parse

	// Refused when they ask for what is not implemented.
	Functions  json.RawMessage `json:"functions"`
	Audio      json.RawMessage `json:"audio"`
	Modalities []string        `json:"modalities"`
	Prediction json.RawMessage `json:"prediction"`
}

// sampling are the fields chat and text completions share: how long the
// answer may be, how it is sampled, whether it streams.
type sampling struct {
	MaxTokens     *int            `json:"max_tokens"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	Seed          *int64          `json:"seed"`
	Stop          json.RawMessage `json:"stop"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	FrequencyPenalty *float64 `json:"frequency_penalty"`
	PresencePenalty  *float64 `json:"presence_penalty"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	ToolCalls  json.RawMessage `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	} `json:"image_url"`
}

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: 400, Type: "invalid_request_error", Param: param, Message: fmt.Sprintf(format, args...)}
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// maxStopBytes bounds one stop string.
const maxStopBytes = 512

// parse checks the request body. It is read as JSON whatever its
// Content-Type says (curl -d sends form encoding), as llama-server does.
func (h *Handler) parse(data []byte) (*chatRequest, *apiError) {
	var req chatRequest
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, badRequest(te.Field, "%s must be a JSON %s, not %s", te.Field, te.Type, te.Value)
		}
		return nil, badRequest("", "the body is not valid JSON: %v", err)
	}
	if d.More() {
		return nil, badRequest("", "the body holds more than one JSON value")
	}
	co, aerr := h.parseChoices(req.N, req.Logprobs != nil && *req.Logprobs, req.TopLogprobs, "top_logprobs", req.LogitBias)
	if aerr != nil {
		return nil, aerr
	}
	req.choices = co
	switch {
	case !isNull(req.Functions):
		return nil, badRequest("functions", "functions are not supported (use tools)")
	case !isNull(req.Audio) || slices.Contains(req.Modalities, "audio"):
		return nil, badRequest("audio", "audio output is not supported")
	case !isNull(req.Prediction):
		return nil, badRequest("prediction", "predicted outputs are not supported")
	case len(req.Messages) == 0:
		return nil, badRequest("messages", "messages must hold at least one message")
	case len(req.Messages) > h.opts.MaxMessages:
		return nil, badRequest("messages", "%d messages: at most %d in one request", len(req.Messages), h.opts.MaxMessages)
	}
	return &req, nil
}

// prepare turns the request into the pipeline's input and options,
// fetching remote images when allowed.
func (h *Handler) prepare(ctx context.Context, req *chatRequest) (pipeline.Input, pipeline.GenerateOptions, *apiError) {
	var in pipeline.Input
	var gen pipeline.GenerateOptions
	tools, aerr := parseTools(req)
	if aerr != nil {
		return in, gen, aerr
	}
	callNames := map[string]string{} // call id → function, for tool results
	history := false                 // the messages hold calls or results
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		role := m.Role
		switch role {
		case "developer":
			role = "system"
		case "system", "user", "assistant":
		case "tool":
			text, aerr := contentText(m.Content, param)
			if aerr != nil {
				return in, gen, aerr
			}
			in.Messages = append(in.Messages, toolcall.Result(m.ToolCallID, callNames[m.ToolCallID], text))
			history = true
			continue
		case "function":
			return in, gen, badRequest(param+".role", "role \"function\" is not supported (use tools and role \"tool\")")
		case "":
			return in, gen, badRequest(param+".role", "%s has no role", param)
		default:
			return in, gen, badRequest(param+".role", "unknown role %q (system, developer, user, assistant, tool)", m.Role)
		}
		if !isNull(m.ToolCalls) && role == "assistant" {
			text, aerr := contentText(m.Content, param)
			if aerr != nil {
				return in, gen, aerr
			}
			msg, aerr := toolCallsMessage(m.ToolCalls, text, param, callNames)
			if aerr != nil {
				return in, gen, aerr
			}
			in.Messages = append(in.Messages, msg)
			history = true
			continue
		}
		msg := template.Message{Role: role}
		content := bytes.TrimSpace(m.Content)
		switch {
		case len(content) == 0 || string(content) == "null":
			return in, gen, badRequest(param+".content", "%s has no content", param)
		case content[0] == '"':
			var s string
			if err := json.Unmarshal(content, &s); err != nil {
				return in, gen, badRequest(param+".content", "%s.content: %v", param, err)
			}
			msg.Content = []template.Part{template.Text(s)}
		case content[0] == '[':
			var parts []contentPart
			if err := json.Unmarshal(content, &parts); err != nil {
				return in, gen, badRequest(param+".content", "%s.content must be a string or an array of parts: %v", param, err)
			}
			if len(parts) == 0 {
				return in, gen, badRequest(param+".content", "%s.content is an empty array", param)
			}
			if len(parts) > h.opts.MaxMessages {
				return in, gen, badRequest(param+".content", "%s.content has %d parts: at most %d", param, len(parts), h.opts.MaxMessages)
			}
			for j, part := range parts {
				pp := fmt.Sprintf("%s.content[%d]", param, j)
				switch part.Type {
				case "text":
					msg.Content = append(msg.Content, template.Text(part.Text))
				case "image_url":
					if role != "user" {
						return in, gen, badRequest(pp, "images are only accepted in user messages")
					}
					if part.ImageURL == nil || part.ImageURL.URL == "" {
						return in, gen, badRequest(pp+".image_url.url", "%s has no image_url.url", pp)
					}
					if len(in.Images) == h.opts.MaxImages {
						return in, gen, badRequest(pp, "more than %d images in one request", h.opts.MaxImages)
					}
					data, aerr := h.imageBytes(ctx, part.ImageURL.URL, pp+".image_url.url")
					if aerr != nil {
						return in, gen, aerr
					}
					in.Images = append(in.Images, pipeline.ImageBytes(data))
					msg.Content = append(msg.Content, template.Image())
				case "":
					return in, gen, badRequest(pp+".type", "%s has no type", pp)
				default:
					return in, gen, badRequest(pp+".type", "content part type %q is not supported (text, image_url)", part.Type)
				}
			}
		default:
			return in, gen, badRequest(param+".content", "%s.content must be a string or an array of parts", param)
		}
		in.Messages = append(in.Messages, msg)
	}
	if last := in.Messages[len(in.Messages)-1]; last.Role == "assistant" {
		return in, gen, badRequest("messages", "the last message is the assistant's: the answer would continue it, which is not supported")
	}

	max := h.opts.MaxTokens
	for _, mt := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if mt.v == nil {
			continue
		}
		if *mt.v < 1 || *mt.v > h.opts.MaxTokens {
			return in, gen, badRequest(mt.name, "%s = %d: must be between 1 and %d", mt.name, *mt.v, h.opts.MaxTokens)
		}
		max = *mt.v
	}
	gen.MaxTokens = max
	cfg := sampler.Config{Temperature: 1}
	if t := req.Temperature; t != nil {
		if *t < 0 || *t > 2 || math.IsNaN(*t) {
			return in, gen, badRequest("temperature", "temperature = %v: must be between 0 and 2", *t)
		}
		cfg.Temperature = float32(*t)
	}
	if p := req.TopP; p != nil {
		if *p <= 0 || *p > 1 || math.IsNaN(*p) {
			return in, gen, badRequest("top_p", "top_p = %v: must be in (0, 1]", *p)
		}
		cfg.TopP = float32(*p)
	}
	for _, pen := range []struct {
		name string
		v    *float64
		dst  *float32
	}{{"frequency_penalty", req.FrequencyPenalty, &cfg.FrequencyPenalty}, {"presence_penalty", req.PresencePenalty, &cfg.PresencePenalty}} {
		if pen.v == nil {
			continue
		}
		if *pen.v < -2 || *pen.v > 2 || math.IsNaN(*pen.v) {
			return in, gen, badRequest(pen.name, "%s = %v: must be between -2 and 2", pen.name, *pen.v)
		}
		*pen.dst = float32(*pen.v)
	}
	if s := req.Seed; s != nil {
		cfg.Seed = uint32(*s) ^ uint32(*s>>32)
		if cfg.Seed == 0 {
			cfg.Seed = 1
		}
	}
	if !isNull(req.Stop) {
		var one string
		var many []string
		if err := json.Unmarshal(req.Stop, &one); err == nil {
			many = []string{one}
		} else if err := json.Unmarshal(req.Stop, &many); err != nil {
			return in, gen, badRequest("stop", "stop must be a string or an array of strings")
		}
		if len(many) > 4 {
			return in, gen, badRequest("stop", "at most 4 stop sequences, got %d", len(many))
		}
		for _, s := range many {
			if len(s) > maxStopBytes {
				return in, gen, badRequest("stop", "a stop sequence of %d bytes: at most %d", len(s), maxStopBytes)
			}
		}
		gen.Stop = many
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			cfg.Grammar = jsonschema.ObjectGrammar()
		case "json_schema":
			if rf.JSONSchema == nil || isNull(rf.JSONSchema.Schema) {
				return in, gen, badRequest("response_format.json_schema.schema", "json_schema needs a schema")
			}
			g, err := jsonschema.Grammar(rf.JSONSchema.Schema)
			if err != nil {
				return in, gen, badRequest("response_format.json_schema.schema", "%v", err)
			}
			cfg.Grammar = g
		default:
			return in, gen, badRequest("response_format.type", "response_format type %q: text, json_object or json_schema", rf.Type)
		}
	}
	gen.Sampler = cfg
	if len(tools.Tools) > 0 || history {
		if cfg.Grammar != "" && len(tools.Tools) > 0 && tools.Choice.Mode != toolcall.ChoiceNone {
			return in, gen, badRequest("response_format", "response_format with tools: a structured answer and tool calls cannot be constrained together")
		}
		if aerr := h.checkToolGrammar(tools); aerr != nil {
			return in, gen, aerr
		}
		gen.Tools = tools
	}
	return in, gen, nil
}

// imageBytes reads the image an image_url names.
func (h *Handler) imageBytes(ctx context.Context, raw, param string) ([]byte, *apiError) {
	if rest, ok := strings.CutPrefix(raw, "data:"); ok {
		meta, payload, ok := strings.Cut(rest, ",")
		if !ok {
			return nil, badRequest(param, "a data: URL needs a comma before its data")
		}
		if !strings.HasSuffix(meta, ";base64") {
			data, err := url.PathUnescape(payload)
			if err != nil {
				return nil, badRequest(param, "data: URL: %v", err)
			}
			return []byte(data), nil
		}
		payload = strings.TrimRight(payload, "=")
		data, err := base64.RawStdEncoding.DecodeString(payload)
		if err != nil {
			if data, err = base64.RawURLEncoding.DecodeString(payload); err != nil {
				return nil, badRequest(param, "the image's base64 data is invalid: %v", err)
			}
		}
		return data, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, badRequest(param, "image_url must be a data: URL (or an http(s) URL where the server allows them)")
	}
	if !h.opts.RemoteImages {
		return nil, badRequest(param, "remote images are off on this server: send the image as a data: URL")
	}
	if err := h.allowedURL(u); err != nil {
		return nil, badRequest(param, "%v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, h.opts.RemoteImageTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(rctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, badRequest(param, "image URL: %v", err)
	}
	resp, err := h.client.Do(hr)
	if err != nil {
		return nil, badRequest(param, "fetching the image: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, badRequest(param, "fetching the image: %s", resp.Status)
	}
	if resp.ContentLength > h.opts.RemoteImageBytes {
		return nil, badRequest(param, "the image is larger than %d bytes", h.opts.RemoteImageBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, h.opts.RemoteImageBytes+1))
	if err != nil {
		return nil, badRequest(param, "fetching the image: %v", err)
	}
	if int64(len(data)) > h.opts.RemoteImageBytes {
		return nil, badRequest(param, "the image is larger than %d bytes", h.opts.RemoteImageBytes)
	}
	return data, nil
}
