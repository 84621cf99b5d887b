package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/ardanlabs/jinja"
)

// toValue converts a Go value given by the caller into a template value.
//
// Dicts keep order where the Go value has one: Map, Message, Part and
// json.RawMessage keep their order (as Python dicts keep insertion order);
// Go maps are sorted by key; structs go through encoding/json, so their
// dicts follow field order and json tags.
func toValue(v any) (jinja.Value, error) {
	switch x := v.(type) {
	case nil:
		return jinja.None(), nil
	case jinja.Value:
		return x, nil
	case bool:
		return jinja.NewBool(x), nil
	case string:
		return jinja.NewString(x), nil
	case int:
		return jinja.NewInt(int64(x)), nil
	case int64:
		return jinja.NewInt(x), nil
	case float64:
		return jinja.NewFloat(x), nil
	case json.Number:
		return numberValue(string(x)), nil
	case json.RawMessage:
		return decodeJSON(x)
	case Map:
		d := jinja.NewDict()
		dict := d.AsDict()
		for _, kv := range x {
			val, err := toValue(kv.Value)
			if err != nil {
				return jinja.Value{}, fmt.Errorf("key %q: %w", kv.Key, err)
			}
			dict.Set(kv.Key, val)
		}
		return d, nil
	case Message:
		return x.value()
	case Part:
		return x.value()
	case []Message:
		return messagesValue(x)
	case []any:
		items := make([]jinja.Value, len(x))
		for i, e := range x {
			val, err := toValue(e)
			if err != nil {
				return jinja.Value{}, fmt.Errorf("index %d: %w", i, err)
			}
			items[i] = val
		}
		return jinja.NewList(items), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := jinja.NewDict()
		dict := d.AsDict()
		for _, k := range keys {
			val, err := toValue(x[k])
			if err != nil {
				return jinja.Value{}, fmt.Errorf("key %q: %w", k, err)
			}
			dict.Set(k, val)
		}
		return d, nil
	}
	return reflectValue(reflect.ValueOf(v))
}

func reflectValue(rv reflect.Value) (jinja.Value, error) {
	switch rv.Kind() {
	case reflect.Invalid:
		return jinja.None(), nil
	case reflect.Bool:
		return jinja.NewBool(rv.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return jinja.NewInt(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return jinja.NewFloat(float64(u)), nil
		}
		return jinja.NewInt(int64(u)), nil
	case reflect.Float32, reflect.Float64:
		return jinja.NewFloat(rv.Float()), nil
	case reflect.String:
		return jinja.NewString(rv.String()), nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return jinja.None(), nil
		}
		if rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Struct {
			return structValue(rv)
		}
		return toValue(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return jinja.None(), nil
		}
		items := make([]jinja.Value, rv.Len())
		for i := range rv.Len() {
			val, err := toValue(rv.Index(i).Interface())
			if err != nil {
				return jinja.Value{}, fmt.Errorf("index %d: %w", i, err)
			}
			items[i] = val
		}
		return jinja.NewList(items), nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return jinja.Value{}, fmt.Errorf("unsupported map key type %s (keys must be strings)", rv.Type().Key())
		}
		if rv.IsNil() {
			return jinja.None(), nil
		}
		keys := make([]string, 0, rv.Len())
		byKey := make(map[string]reflect.Value, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			k := it.Key().String()
			keys = append(keys, k)
			byKey[k] = it.Value()
		}
		sort.Strings(keys)
		d := jinja.NewDict()
		dict := d.AsDict()
		for _, k := range keys {
			val, err := toValue(byKey[k].Interface())
			if err != nil {
				return jinja.Value{}, fmt.Errorf("key %q: %w", k, err)
			}
			dict.Set(k, val)
		}
		return d, nil
	case reflect.Struct:
		return structValue(rv)
	}
	return jinja.Value{}, fmt.Errorf("unsupported value of type %s", rv.Type())
}

// structValue converts a struct through encoding/json, keeping field order.
func structValue(rv reflect.Value) (jinja.Value, error) {
	data, err := json.Marshal(rv.Interface())
	if err != nil {
		return jinja.Value{}, fmt.Errorf("encode %s as JSON: %w", rv.Type(), err)
	}
	return decodeJSON(data)
}

// numberValue converts a JSON number the way Python's json.loads does: an
// int when it has no fraction or exponent, else a float.
func numberValue(s string) jinja.Value {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return jinja.NewInt(i)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return jinja.NewString(s)
	}
	return jinja.NewFloat(f)
}

// decodeJSON decodes one JSON document into template values, keeping the
// order of object keys (a later duplicate key replaces the value in place,
// as Python's json.loads does).
func decodeJSON(data []byte) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeJSONValue(dec)
	if err != nil {
		return jinja.Value{}, fmt.Errorf("decode JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return jinja.Value{}, errors.New("decode JSON: trailing data after the value")
	}
	return v, nil
}

func decodeJSONValue(dec *json.Decoder) (jinja.Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return jinja.Value{}, err
	}
	switch t := tok.(type) {
	case nil:
		return jinja.None(), nil
	case bool:
		return jinja.NewBool(t), nil
	case string:
		return jinja.NewString(t), nil
	case json.Number:
		return numberValue(string(t)), nil
	case json.Delim:
		switch t {
		case '[':
			items := []jinja.Value{}
			for dec.More() {
				v, err := decodeJSONValue(dec)
				if err != nil {
					return jinja.Value{}, err
				}
				items = append(items, v)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Value{}, err
			}
			return jinja.NewList(items), nil
		case '{':
			d := jinja.NewDict()
			dict := d.AsDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jinja.Value{}, err
				}
				key, ok := kt.(string)
				if !ok {
					return jinja.Value{}, fmt.Errorf("object key %v is not a string", kt)
				}
				v, err := decodeJSONValue(dec)
				if err != nil {
					return jinja.Value{}, err
				}
				dict.Set(key, v)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Value{}, err
			}
			return d, nil
		}
	}
	return jinja.Value{}, fmt.Errorf("unexpected JSON token %v", tok)
}
