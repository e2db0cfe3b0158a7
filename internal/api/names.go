package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

	"github.com/ceforge/ceforge/internal/apierr"
)

// checkNames walks body with encoding/json's tokenizer beside the Go type
// it will be decoded into: every object name must be one of the type's JSON
// names exactly as written (encoding/json matches case-insensitively) and
// appear once per object; the body must hold exactly one value. Maps take
// any name (once); values of interface type are checked for repeats only.
//
// encoding/json/v2 has these rules built in; its mirror module
// (github.com/go-json-experiment/json) added 590 KB to the api bootstrap
// (11.86 -> 12.45 MB, over the 12 MB target). From Go 1.27, where v2 is
// standard and v1 is built on it, Decode can use it at no size cost.
func checkNames(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers are only skipped here: no float parsing
	if err := walkValue(dec, t, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apierr.BadRequest("malformed_json", "", "the body must hold exactly one JSON value")
	}
	return nil
}

func walkValue(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return decodeError(err)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t, path)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return decodeErrorOrNil(err)
	}
	return nil
}

func walkObject(dec *json.Decoder, t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t != nil && t.Kind() == reflect.Struct:
		fields = jsonFields(t)
	case t != nil && t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return decodeError(err)
		}
		name, _ := tok.(string)
		field := name
		if path != "" {
			field = path + "." + name
		}
		if seen[name] {
			return apierr.BadRequest("duplicate_field", field, "%q is given more than once", field)
		}
		seen[name] = true
		vt := elem
		if fields != nil {
			ft, ok := fields[name]
			if !ok {
				return apierr.BadRequest("unknown_field", field, "unknown field %q (names are case-sensitive)", field)
			}
			vt = ft
		}
		if err := walkValue(dec, vt, field); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return decodeErrorOrNil(err)
}

func decodeErrorOrNil(err error) error {
	if err != nil {
		return decodeError(err)
	}
	return nil
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields returns a struct type's JSON names (as encoding/json names
// them: the tag's name, else the Go name; untagged embedded structs inlined).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, dup := m[k]; !dup {
						m[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = ft
	}
	fieldCache.Store(t, m)
	return m
}
