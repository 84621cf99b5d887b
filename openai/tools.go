package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler/jsonschema"
	"github.com/vlm-go/vlm/template"
	"github.com/vlm-go/vlm/toolcall"
)

// toolParam is one entry of a request's tools.
type toolParam struct {
	Type     string `json:"type"`
	Function *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	} `json:"function"`
}

// toolCallParam is one entry of an assistant message's tool_calls.
type toolCallParam struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

// parseTools reads tools, tool_choice and parallel_tool_calls; nil when
// the request has no tools (tool_choice "none" or absent).
func parseTools(req *chatRequest) (*pipeline.ToolOptions, *apiError) {
	var params []toolParam
	if !isNull(req.Tools) {
		if err := json.Unmarshal(req.Tools, &params); err != nil {
			return nil, badRequest("tools", "tools must be an array of {\"type\": \"function\", \"function\": {...}}: %v", err)
		}
	}
	to := &pipeline.ToolOptions{Converter: jsonschema.Grammar}
	for i, p := range params {
		param := fmt.Sprintf("tools[%d]", i)
		if p.Type != "function" {
			return nil, badRequest(param+".type", "tool type %q: only \"function\" is supported", p.Type)
		}
		if p.Function == nil {
			return nil, badRequest(param+".function", "%s has no function", param)
		}
		to.Tools = append(to.Tools, toolcall.Tool{Name: p.Function.Name, Description: p.Function.Description, Parameters: p.Function.Parameters})
	}
	if err := toolcall.Validate(to.Tools); err != nil {
		return nil, badRequest("tools", "%v", err)
	}
	if c := bytes.TrimSpace(req.ToolChoice); !isNull(c) {
		var mode string
		if json.Unmarshal(c, &mode) == nil {
			switch mode {
			case "none":
				to.Choice.Mode = toolcall.ChoiceNone
			case "auto":
				to.Choice.Mode = toolcall.ChoiceAuto
			case "required":
				to.Choice.Mode = toolcall.ChoiceRequired
			default:
				return nil, badRequest("tool_choice", "tool_choice %q: none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}", mode)
			}
		} else {
			var named struct {
				Type     string `json:"type"`
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if err := json.Unmarshal(c, &named); err != nil || named.Type != "function" || named.Function.Name == "" {
				return nil, badRequest("tool_choice", "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}")
			}
			to.Choice = toolcall.Choice{Mode: toolcall.ChoiceNamed, Name: named.Function.Name}
			found := false
			for _, t := range to.Tools {
				found = found || t.Name == named.Function.Name
			}
			if !found {
				return nil, badRequest("tool_choice", "tool_choice names the function %q, which is not among the tools", named.Function.Name)
			}
		}
	}
	if len(to.Tools) == 0 && (to.Choice.Mode == toolcall.ChoiceRequired || to.Choice.Mode == toolcall.ChoiceNamed) {
		return nil, badRequest("tool_choice", "tool_choice requires a call but the request has no tools")
	}
	to.NoParallel = req.ParallelToolCalls != nil && !*req.ParallelToolCalls
	return to, nil
}

// checkToolGrammar builds the tools' grammar once so that a schema the
// converter refuses is a 400 naming the tool.
func (h *Handler) checkToolGrammar(to *pipeline.ToolOptions) *apiError {
	if to == nil || len(to.Tools) == 0 || to.Choice.Mode == toolcall.ChoiceNone {
		return nil
	}
	f := h.p.ToolFormat()
	for i, t := range to.Tools {
		if _, err := f.Grammar([]toolcall.Tool{t}, toolcall.Choice{Mode: toolcall.ChoiceRequired}, false, to.Converter); err != nil {
			return badRequest(fmt.Sprintf("tools[%d].function.parameters", i), "%v", err)
		}
	}
	return nil
}

// toolCallsMessage converts an assistant message's tool_calls.
func toolCallsMessage(raw json.RawMessage, text, param string, names map[string]string) (template.Message, *apiError) {
	var list []toolCallParam
	if err := json.Unmarshal(raw, &list); err != nil {
		return template.Message{}, badRequest(param+".tool_calls", "tool_calls must be an array of {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}: %v", err)
	}
	calls := make([]toolcall.Call, len(list))
	for i, c := range list {
		p := fmt.Sprintf("%s.tool_calls[%d]", param, i)
		if c.Type != "" && c.Type != "function" {
			return template.Message{}, badRequest(p+".type", "tool call type %q: only \"function\"", c.Type)
		}
		if c.Function.Name == "" {
			return template.Message{}, badRequest(p+".function.name", "%s has no function name", p)
		}
		args := bytes.TrimSpace(c.Function.Arguments)
		if len(args) > 0 && args[0] == '"' { // OpenAI's form: a JSON string holding the object
			var s string
			if err := json.Unmarshal(args, &s); err != nil {
				return template.Message{}, badRequest(p+".function.arguments", "%v", err)
			}
			args = []byte(s)
		}
		if len(bytes.TrimSpace(args)) == 0 || string(args) == "null" {
			args = []byte("{}")
		}
		calls[i] = toolcall.Call{ID: c.ID, Name: c.Function.Name, Arguments: json.RawMessage(args)}
		if c.ID != "" {
			names[c.ID] = c.Function.Name
		}
	}
	return toolcall.AssistantCalls(text, calls), nil
}

// contentText reads a message's content as text: a string, or the text of
// an array of text parts.
func contentText(raw json.RawMessage, param string) (string, *apiError) {
	c := bytes.TrimSpace(raw)
	if len(c) == 0 || string(c) == "null" {
		return "", nil
	}
	if c[0] == '"' {
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return "", badRequest(param+".content", "%v", err)
		}
		return s, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(c, &parts); err != nil {
		return "", badRequest(param+".content", "%s.content must be a string or an array of text parts: %v", param, err)
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "text" {
			return "", badRequest(fmt.Sprintf("%s.content[%d].type", param, j), "only text parts are accepted here, not %q", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// toolCallsJSON is the calls as OpenAI's message.tool_calls.
func toolCallsJSON(calls []toolcall.Call) []map[string]any {
	out := make([]map[string]any, len(calls))
	for i, c := range calls {
		out[i] = map[string]any{"id": c.ID, "type": "function", "function": map[string]any{"name": c.Name, "arguments": string(c.Arguments)}}
	}
	return out
}

// toolStream turns a stream's text into content deltas and, at the end,
// tool_calls deltas (one per call, with its whole arguments).
type toolStream struct {
	s *toolcall.Streamer
}

// multiEvent is several choices lists, sent as one event each.
type multiEvent []any

func (ts *toolStream) choices(text string, finish any) any {
	delta := func(d map[string]any, finish any) []map[string]any {
		return []map[string]any{{"index": 0, "delta": d, "finish_reason": finish, "logprobs": nil}}
	}
	if finish == nil {
		if t := ts.s.Write(text); t != "" {
			return delta(map[string]any{"content": t}, nil)
		}
		return nil
	}
	deltas, reason := toolCallDeltas(ts.s, finish.(string))
	var events multiEvent
	for _, d := range deltas {
		events = append(events, delta(d, nil))
	}
	return append(events, delta(map[string]any{}, reason))
}

// answerMessage is the assistant message and finish reason of a finished
// answer: with tools, its text outside the calls (null when there is none)
// and its tool_calls, finish reason "tool_calls"; else text as given.
func answerMessage(resp *pipeline.Response, gen pipeline.GenerateOptions, text string) (map[string]any, string) {
	message := map[string]any{"role": "assistant", "content": text}
	finish := finishReason(resp.StopReason)
	if gen.Tools != nil {
		message["content"] = resp.Text // without the calls
		if len(resp.ToolCalls) > 0 {
			message["tool_calls"], finish = toolCallsJSON(resp.ToolCalls), "tool_calls"
			if resp.Text == "" {
				message["content"] = nil
			}
		}
	}
	return message, finish
}

// toolStreamer returns a streamer for one streamed answer when the
// request offers tools, else nil.
func (h *Handler) toolStreamer(gen pipeline.GenerateOptions) *toolcall.Streamer {
	if to := gen.Tools; to != nil && len(to.Tools) > 0 && to.Choice.Mode != toolcall.ChoiceNone {
		return h.p.ToolFormat().NewStreamer(to.Tools)
	}
	return nil
}

// toolCallDeltas are the closing deltas of a streamed answer with calls:
// the text not yet sent, one tool_calls delta per call; and the finish
// reason ("tool_calls" when there are calls, else finish).
func toolCallDeltas(s *toolcall.Streamer, finish string) ([]map[string]any, string) {
	rest, calls, _ := s.Finish()
	var deltas []map[string]any
	if rest != "" {
		deltas = append(deltas, map[string]any{"content": rest})
	}
	for i, c := range calls {
		deltas = append(deltas, map[string]any{"tool_calls": []map[string]any{{
			"index": i, "id": c.ID, "type": "function",
			"function": map[string]any{"name": c.Name, "arguments": string(c.Arguments)},
		}}})
	}
	if len(calls) > 0 {
		finish = "tool_calls"
	}
	return deltas, finish
}
