package template

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
)

// Limits on one render. A chat template comes from a model file: a
// recursive macro would overflow Go's stack (a fatal error, not a panic),
// nested loops could run for hours, and a string multiplied by a huge
// number would take gigabytes.
const (
	// MaxMacroDepth bounds nested macro calls.
	MaxMacroDepth = 64
	// MaxRangeItems bounds the items all range() calls of one render make
	// together (one range() is also bounded by jinja2's 100000).
	MaxRangeItems = 1_000_000
	// MaxRenderBytes bounds the rendered text.
	MaxRenderBytes = 64 << 20
	// MaxRenderSteps bounds the work of one render, counted in steps:
	// printed expressions, macro calls and range() calls. Work, not time,
	// is what ends a long render, so the same template stops at the same
	// point with the same error on a fast and on a slow machine (about a
	// second of rendering on a laptop; real chat templates take hundreds).
	MaxRenderSteps = 1_000_000
	// MaxRenderTime bounds one render's wall time: only a backstop for
	// work between steps (a filter over a long string), far above what
	// MaxRenderSteps takes on a slow machine.
	MaxRenderTime = 60 * time.Second
	// maxRepeat bounds the integer literal a string may be multiplied by
	// (checked when the template is compiled).
	maxRepeat = 1_000_000
)

// repeatLiteral finds an integer literal next to "*" in a tag.
var repeatLiteral = regexp.MustCompile(`\*\s*([0-9][0-9_]*)|([0-9][0-9_]*)\s*\*`)

// checkRepeats refuses a template that multiplies by an integer literal
// above maxRepeat ('x' * 2000000000 would allocate gigabytes in one
// expression, before any limit of the render can see it).
func checkRepeats(src string) error {
	for _, tag := range tagBodies(src) {
		for _, m := range repeatLiteral.FindAllStringSubmatch(tag, -1) {
			lit := strings.ReplaceAll(m[1]+m[2], "_", "")
			if n, err := strconv.ParseInt(lit, 10, 64); err != nil || n > maxRepeat {
				return fmt.Errorf("the template multiplies by %s, more than %d: %w", lit, maxRepeat, ErrRenderLimit)
			}
		}
	}
	return nil
}

// tagBodies returns the text inside {{ }} and {% %} tags.
func tagBodies(src string) []string {
	var out []string
	for i := 0; i+1 < len(src); i++ {
		if src[i] != '{' || (src[i+1] != '{' && src[i+1] != '%') {
			continue
		}
		closer := "}}"
		if src[i+1] == '%' {
			closer = "%}"
		}
		end := strings.Index(src[i+2:], closer)
		if end < 0 {
			break
		}
		out = append(out, src[i+2:i+2+end])
		i += 2 + end + 1
	}
	return out
}

// ErrRenderLimit: a render went past one of the limits above (or its
// Options.Context was cancelled); it comes wrapped in a *RenderError.
var ErrRenderLimit = errors.New("template: render limit exceeded")

// budget is one render's use of the limits.
type budget struct {
	ctx      context.Context
	deadline time.Time
	depth    int
	items    int64
	printed  int64
	steps    int64
	now      func() time.Time // the wall clock of the backstop
}

// newBudget starts a render's budget; now is the backstop's clock.
func newBudget(ctx context.Context, now func() time.Time) *budget {
	return &budget{ctx: ctx, now: now, deadline: now().Add(MaxRenderTime)}
}

// check counts one step and fails once the render is cancelled, has done
// MaxRenderSteps steps, or (the backstop) is out of time.
func (b *budget) check() error {
	if b.ctx != nil {
		if err := b.ctx.Err(); err != nil {
			return fmt.Errorf("render cancelled (%w): %w", err, ErrRenderLimit)
		}
	}
	if b.steps++; b.steps > MaxRenderSteps {
		return fmt.Errorf("render did more than %d steps (printed expressions, macro calls, range() calls): %w", MaxRenderSteps, ErrRenderLimit)
	}
	if b.now().After(b.deadline) {
		return fmt.Errorf("render took longer than %v: %w", MaxRenderTime, ErrRenderLimit)
	}
	return nil
}

func (b *budget) enterValue() jinja.Value {
	return jinja.NewCallable(enterMacro, func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
		b.depth++
		if b.depth > MaxMacroDepth {
			return jinja.Undefined(), fmt.Errorf("macro calls nested deeper than %d (a recursive macro?): %w", MaxMacroDepth, ErrRenderLimit)
		}
		if err := b.check(); err != nil {
			return jinja.Undefined(), err
		}
		return jinja.NewString(""), nil
	})
}

func (b *budget) leaveValue() jinja.Value {
	return jinja.NewCallable(leaveMacro, func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
		if b.depth > 0 {
			b.depth--
		}
		return jinja.NewString(""), nil
	})
}

func (b *budget) rangeValue() jinja.Value {
	return jinja.NewCallable("range", func(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
		if err := b.check(); err != nil {
			return jinja.Undefined(), err
		}
		v, err := safeRange(args, kwargs)
		if err != nil {
			return v, err
		}
		if b.items += int64(len(v.AsList().Items)); b.items > MaxRangeItems {
			return jinja.Undefined(), fmt.Errorf("range() calls made more than %d items in one render (nested loops?): %w", MaxRangeItems, ErrRenderLimit)
		}
		return v, nil
	})
}

func (b *budget) printValue() jinja.Value {
	return jinja.NewCallable("print", func(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
		if err := b.check(); err != nil {
			return jinja.Undefined(), err
		}
		v, err := printString(args, kwargs)
		if err != nil {
			return v, err
		}
		if b.printed += int64(len(v.AsString())); b.printed > MaxRenderBytes {
			return jinja.Undefined(), fmt.Errorf("the template printed more than %d bytes: %w", MaxRenderBytes, ErrRenderLimit)
		}
		return v, nil
	})
}
