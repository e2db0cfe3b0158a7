package cli

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/handlers"
)

// The CLI decodes the API's answers into its own types: every field it
// reads must be a property of the schema the OpenAPI document gives that
// answer, of a JSON type that decodes into the field's Go type. A guessed
// or renamed field fails here instead of reading as empty.
func TestTypesFollowOpenAPI(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(handlers.OpenAPIDocument(), &doc))
	schemas := doc.Components.Schemas
	for _, c := range []struct {
		schema string
		v      any
	}{
		{"Run", runRec{}},
		{"ComputeEnv", computeEnv{}},
		{"RunProgress", runProgress{}},
		{"TaskPage", page[task]{}},
		{"Sweep", sweepReport{}},
		{"LogPage", logPage{}},
	} {
		t.Run(c.schema, func(t *testing.T) {
			var errs []string
			conforms(&errs, c.schema, reflect.TypeOf(c.v), schemas[c.schema], schemas)
			require.NotNil(t, schemas[c.schema], "no schema %s", c.schema)
			require.Empty(t, errs)
		})
	}
}

// conforms checks that Go type typ decodes what schema s describes.
func conforms(errs *[]string, path string, typ reflect.Type, s map[string]any, schemas map[string]map[string]any) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if ref, ok := s["$ref"].(string); ok {
		s = schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
	}
	if s == nil {
		*errs = append(*errs, path+": no schema")
		return
	}
	types := map[string]bool{}
	switch v := s["type"].(type) {
	case string:
		types[v] = true
	case []any:
		for _, x := range v {
			types[x.(string)] = true
		}
	}
	want := func(names ...string) {
		if len(types) == 0 {
			return // any JSON value
		}
		for _, n := range names {
			if types[n] {
				return
			}
		}
		*errs = append(*errs, path+": Go "+typ.String()+" cannot hold JSON "+strings.Join(slices.Sorted(mapKeys(types)), "|"))
	}
	switch {
	case typ == reflect.TypeOf(time.Time{}):
		want("string")
		if f, _ := s["format"].(string); f != "date-time" && len(types) > 0 {
			*errs = append(*errs, path+": a time, but the schema's format is "+f)
		}
	case typ.Kind() == reflect.Struct:
		want("object")
		props, _ := s["properties"].(map[string]any)
		for _, f := range fields(typ) {
			p, ok := props[f.name].(map[string]any)
			if !ok {
				*errs = append(*errs, path+"."+f.name+": not in the schema")
				continue
			}
			conforms(errs, path+"."+f.name, f.typ, p, schemas)
		}
	case typ.Kind() == reflect.Slice:
		want("array")
		if items, ok := s["items"].(map[string]any); ok {
			conforms(errs, path+"[]", typ.Elem(), items, schemas)
		}
	case typ.Kind() == reflect.Map:
		want("object")
	case typ.Kind() == reflect.String:
		want("string")
	case typ.Kind() == reflect.Bool:
		want("boolean")
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		want("integer")
	case typ.Kind() == reflect.Float32 || typ.Kind() == reflect.Float64:
		want("number", "integer")
	case typ.Kind() == reflect.Interface:
	default:
		*errs = append(*errs, path+": unexpected Go type "+typ.String())
	}
}

type field struct {
	name string
	typ  reflect.Type
}

// fields are a struct's JSON fields, embedded structs flattened.
func fields(typ reflect.Type) []field {
	var out []field
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			out = append(out, fields(f.Type)...)
		case f.IsExported() || name != "":
			if name == "" {
				name = f.Name
			}
			out = append(out, field{name, f.Type})
		}
	}
	return out
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
