package pipeline

import (
	"fmt"

	"github.com/vlm-go/vlm/template"
	"github.com/vlm-go/vlm/toolcall"
)

// ToolOptions offer the model functions to call (package toolcall). The
// tools, and the calls and results in the messages (toolcall.AssistantCalls,
// toolcall.Result), are laid out as the model's chat template expects
// them — its own `tools` variable when it has one, the generic format
// otherwise — and the answer is parsed into Response.ToolCalls.
type ToolOptions struct {
	// Tools are the functions offered.
	Tools []toolcall.Tool
	// Choice is whether and how the model calls them: ChoiceAuto (the
	// zero value) lets it write text or calls, ChoiceRequired and
	// ChoiceNamed make the answer calls (forced by a grammar built from
	// the parameters' schemas), ChoiceNone shows the model no tools.
	Choice toolcall.Choice
	// NoParallel allows one call per answer (OpenAI's
	// parallel_tool_calls: false).
	NoParallel bool
	// Converter turns the parameters' JSON schemas into grammars; nil
	// means jsonschema.Grammar (package sampler/jsonschema).
	Converter toolcall.Converter
	// Format overrides the call format detected from the chat template.
	Format *toolcall.Format
}

// ToolFormat returns the tool-call format of the pipeline's chat
// template (the generic one for llama.cpp's built-in templates).
func (p *Pipeline) ToolFormat() *toolcall.Format {
	if p.tmpl == nil {
		f, _ := toolcall.Named(toolcall.Hermes)
		return f
	}
	return toolcall.Detect(p.tmpl.Source())
}

// toolSetup is what tools change in one answer.
type toolSetup struct {
	format *toolcall.Format
	tools  []toolcall.Tool // the tools offered (none with ChoiceNone)
	vars   map[string]any  // template variables
}

// prepareTools lays out msgs for the template and sets the grammar in opts.
func (p *Pipeline) prepareTools(msgs []template.Message, opts *GenerateOptions) ([]template.Message, *toolSetup, error) {
	to := opts.Tools
	if err := toolcall.Validate(to.Tools); err != nil {
		return nil, nil, fmt.Errorf("pipeline: %w: %w", ErrInvalidOptions, err)
	}
	f := to.Format
	if f == nil {
		f = p.ToolFormat()
	}
	tools := to.Tools
	if to.Choice.Mode == toolcall.ChoiceNone {
		tools = nil
	}
	if len(tools) == 0 && (to.Choice.Mode == toolcall.ChoiceRequired || to.Choice.Mode == toolcall.ChoiceNamed) {
		return nil, nil, fmt.Errorf("pipeline: a required or named tool choice without tools: %w", ErrInvalidOptions)
	}
	out, vars := f.Prepare(msgs, tools)
	if len(tools) > 0 {
		if opts.Sampler.Grammar != "" {
			return nil, nil, fmt.Errorf("pipeline: a grammar (or response format) and tool calls together: %w", ErrInvalidOptions)
		}
		g, err := f.Grammar(tools, to.Choice, !to.NoParallel, to.Converter)
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline: %w: %w", ErrInvalidOptions, err)
		}
		if g != nil {
			opts.Sampler.Grammar, opts.Sampler.GrammarRoot, opts.Sampler.GrammarTriggers = g.Text, "", g.Triggers
		}
	}
	return out, &toolSetup{format: f, tools: tools, vars: vars}, nil
}
