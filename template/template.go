package template

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ardanlabs/jinja"
)

// Template is a compiled chat template. It is immutable and safe for
// concurrent use; [Compile] caches templates by source, so compiling the
// same source again is cheap.
type Template struct {
	name   string // built-in name, "" for a caller's source
	source string // the source as given
	tmpl   *jinja.Template
	style  ImageStyle
}

// Options are the render context beside the messages.
//
// Under transformers' apply_chat_template a template sees messages,
// add_generation_prompt, the tokenizer's special tokens and any extra
// keyword arguments; Options carries the same.
type Options struct {
	// AddGenerationPrompt is add_generation_prompt: end the prompt with the
	// opening of an assistant turn.
	AddGenerationPrompt bool

	// BOSToken and EOSToken are bos_token and eos_token, taken by the
	// caller from the model's vocabulary. An empty string leaves the
	// variable undefined, as for a tokenizer without that token (set it in
	// Vars to define it as "").
	BOSToken string // bos_token; "" leaves it undefined
	EOSToken string // eos_token; "" leaves it undefined

	// Vars are further template variables (e.g. "tools", "date_string",
	// "add_vision_id", "enable_thinking"). Values may be nil, bools,
	// numbers, strings, slices, Go maps (keys sorted), [Map] and
	// json.RawMessage (order kept), structs (through encoding/json),
	// [Message] and [Part]. Vars override bos_token, eos_token and the
	// globals raise_exception, strftime_now and range; "messages" and
	// "add_generation_prompt" are refused.
	Vars map[string]any

	// Now is the clock strftime_now reads; nil means time.Now.
	Now func() time.Time

	// Context, if set, cancels the render (checked at every macro call,
	// range() and printed expression). A render also stops after
	// MaxRenderSteps such steps (or, a backstop, MaxRenderTime), with a
	// *RenderError wrapping ErrRenderLimit.
	Context context.Context

	// Marker is the media marker [Template.Prompt] writes for each image;
	// empty means [DefaultMarker]. Render ignores it.
	Marker string

	// Style, when non-nil, overrides the image style [Template.Prompt] uses
	// to find each image's placeholder (default: [Template.Style]).
	Style *ImageStyle
}

// Compile compiles a Jinja chat template source with transformers'
// environment conventions (trim_blocks, lstrip_blocks, loop controls,
// {% generation %}, raise_exception, strftime_now, tojson keeping
// non-ASCII text). Templates are cached by source: compiling a source
// again returns the same *Template. An empty source returns
// [ErrNoTemplate]; a source the engine rejects returns a *[CompileError].
func Compile(source string) (*Template, error) {
	if strings.TrimSpace(source) == "" {
		return nil, ErrNoTemplate
	}
	if t := cache.get(source); t != nil {
		return t, nil
	}
	t, err := compile(source, "")
	if err != nil {
		return nil, err
	}
	return cache.put(source, t), nil
}

func compile(source, name string) (*Template, error) {
	if err := checkRepeats(source); err != nil {
		return nil, &CompileError{Err: err}
	}
	tmpl, err := safeCompile(prepare(source))
	if err != nil {
		return nil, &CompileError{Err: err}
	}
	return &Template{name: name, source: source, tmpl: tmpl, style: DetectImageStyle(source)}, nil
}

// Parse returns the template that nameOrSource names: a built-in template
// when it is one of [BuiltinNames], else a Jinja source when it contains a
// Jinja tag ("{{", "{%" or "{#"). Anything else returns an error wrapping
// [ErrUnknownTemplate]; an empty string returns [ErrNoTemplate].
func Parse(nameOrSource string) (*Template, error) {
	s := strings.TrimSpace(nameOrSource)
	switch {
	case s == "":
		return nil, ErrNoTemplate
	case isBuiltinName(s):
		return Builtin(s)
	case strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#"):
		return Compile(nameOrSource)
	}
	return nil, fmt.Errorf("%w: %q is neither a built-in template (%s) nor a Jinja source", ErrUnknownTemplate, nameOrSource, strings.Join(BuiltinNames(), ", "))
}

// Resolve picks the chat template for a model: named when the caller named
// one (a built-in name or a Jinja source, see [Parse]), else the template
// embedded in the model (its tokenizer.chat_template). With neither it
// returns [ErrNoTemplate].
func Resolve(named, embedded string) (*Template, error) {
	if strings.TrimSpace(named) != "" {
		return Parse(named)
	}
	if strings.TrimSpace(embedded) != "" {
		return Compile(embedded)
	}
	return nil, ErrNoTemplate
}

// Source returns the template's Jinja source as given.
func (t *Template) Source() string { return t.source }

// Name returns the built-in template's name, or "" for a caller's source.
func (t *Template) Name() string { return t.name }

// Style returns the image style detected from the template's source: how
// the template writes one image, which [Template.Prompt] replaces with the
// media marker.
func (t *Template) Style() ImageStyle { return t.style }

// Render renders the messages exactly as transformers' apply_chat_template
// (jinja2 under its settings) renders them with tokenize=False: image
// parts appear as whatever the template writes for them. It returns a
// *[RaiseError] when the template calls raise_exception, a *[RenderError]
// for other failures.
func (t *Template) Render(msgs []Message, opts Options) (string, error) {
	mv, err := messagesValue(msgs)
	if err != nil {
		return "", err
	}
	return t.render(mv, &opts)
}

// renderClock is the wall clock of the render-time backstop (tests
// replace it to play a slow machine).
var renderClock = time.Now

func (t *Template) render(messages jinja.Value, opts *Options) (string, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	data := make(map[string]jinja.Value, 14+len(opts.Vars))
	b := newBudget(opts.Context, renderClock)
	// Globals as transformers defines them; Vars may replace these.
	data["raise_exception"] = raiseExceptionValue
	data["strftime_now"] = strftimeNow(now)
	data["range"] = b.rangeValue()
	if opts.BOSToken != "" {
		data["bos_token"] = jinja.NewString(opts.BOSToken)
	}
	if opts.EOSToken != "" {
		data["eos_token"] = jinja.NewString(opts.EOSToken)
	}
	for k, v := range opts.Vars {
		switch k {
		case "messages", "add_generation_prompt":
			return "", fmt.Errorf("template: Options.Vars may not set %q (use the messages and Options.AddGenerationPrompt)", k)
		}
		val, err := toValue(v)
		if err != nil {
			return "", fmt.Errorf("template: variable %q: %w", k, err)
		}
		data[k] = val
	}
	data["messages"] = messages
	data["add_generation_prompt"] = jinja.NewBool(opts.AddGenerationPrompt)
	// The functions prepare's rewriting calls; nothing may replace them.
	data[tojsonFilter] = tojsonValue
	data[trimFilter] = trimValue
	data[stringFilter] = stringValue
	data[printFilter] = b.printValue()
	data[enterMacro] = b.enterValue()
	data[leaveMacro] = b.leaveValue()

	out, err := safeRender(t.tmpl, data)
	if err == nil && len(out) > MaxRenderBytes {
		err = fmt.Errorf("the rendered prompt has %d bytes, more than %d: %w", len(out), MaxRenderBytes, ErrRenderLimit)
	}
	if err != nil {
		var raise *RaiseError
		if errors.As(err, &raise) {
			return "", raise
		}
		return "", &RenderError{Err: err}
	}
	return out, nil
}

// safeCompile compiles with the engine, turning a panic into an error: a
// template comes from a model file, which is outside input.
func safeCompile(src string) (tmpl *jinja.Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			tmpl, err = nil, fmt.Errorf("jinja engine panicked: %v", r)
		}
	}()
	return jinja.Compile(src)
}

// safeRender renders with the engine, turning a panic into an error.
func safeRender(tmpl *jinja.Template, data map[string]jinja.Value) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("jinja engine panicked: %v", r)
		}
	}()
	return tmpl.RenderValues(data)
}

var (
	raiseExceptionValue = jinja.NewCallable("raise_exception", raiseException)
	tojsonValue         = jinja.NewCallable("tojson", tojson)
	trimValue           = jinja.NewCallable("trim", trim)
	stringValue         = jinja.NewCallable("string", toString)
)

// cacheSize bounds the number of compiled templates kept by [Compile]; a
// process normally uses a handful.
const cacheSize = 64

type templateCache struct {
	mu    sync.Mutex
	m     map[string]*Template
	order []string // insertion order, for eviction
}

var cache = &templateCache{m: make(map[string]*Template)}

func (c *templateCache) get(src string) *Template {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[src]
}

// put stores t unless another goroutine stored one first, and returns the
// stored template.
func (c *templateCache) put(src string, t *Template) *Template {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[src]; ok {
		return old
	}
	if len(c.order) >= cacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[src] = t
	c.order = append(c.order, src)
	return t
}
