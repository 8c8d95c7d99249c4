package ma1sd

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// decode reads a JSON object into v, a pointer to a request struct: not
// JSON or not an object is M_NOT_JSON; a member of the wrong type, a
// member name given twice in one object (at any depth, unknown members
// too), or a member of v spelled in another case is M_BAD_JSON. Unknown
// members are otherwise ignored (docs/rest.md, "What answers look like").
//
// The callers write member names exactly, and both refusals keep mxidp
// from reading a body differently than a proxy or log that reads it with
// another parser: encoding/json alone takes the last of duplicate
// members and matches names case-insensitively, "PASSWORD" and
// "paſſword" (long s) included. With both refused, what encoding/json
// decodes is what the exact names say.
func decode(body []byte, v any) *errBody {
	trimmed := strings.TrimLeft(string(body), " \t\r\n")
	if !json.Valid(body) || !strings.HasPrefix(trimmed, "{") {
		return &errBody{http.StatusBadRequest, matrixError{"M_NOT_JSON", "the body must be a JSON object"}}
	}
	if msg := checkMembers(body, reflect.TypeOf(v)); msg != "" {
		return badJSON(msg)
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return badJSON("member " + typeErr.Field + " has the wrong type")
		}
		return badJSON(err.Error())
	}
	return nil
}

// memberFrame is one open object or array of checkMembers' walk.
type memberFrame struct {
	array bool
	// typ is the request struct this object decodes into (nil for an
	// unknown member), or the element type of this array.
	typ   reflect.Type
	key   string // the member being read, in an object
	next  reflect.Type
	index int // the element being read, in an array
	names []string
	set   map[string]bool // names, once there are many
}

// checkMembers walks body, which is valid JSON, and describes its first
// duplicate member name, or member of t's structs spelled in another
// case; "" when there is none.
func checkMembers(body []byte, t reflect.Type) string {
	var stack []memberFrame
	// expected is the type the value starting now decodes into.
	expected := func() reflect.Type {
		if len(stack) == 0 {
			return t
		}
		top := &stack[len(stack)-1]
		if top.array {
			return top.typ
		}
		return top.next
	}
	for i := 0; i < len(body); {
		switch c := body[i]; c {
		case '{', '[':
			typ := deref(expected())
			f := memberFrame{array: c == '['}
			switch {
			case f.array && typ != nil && (typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array):
				f.typ = typ.Elem()
			case !f.array && typ != nil && typ.Kind() == reflect.Struct:
				f.typ = typ
			}
			if len(stack) < cap(stack) {
				// Reuse the slot's list of names: a bulk lookup opens
				// thousands of small objects.
				f.names = stack[:len(stack)+1][len(stack)].names[:0]
			}
			stack = append(stack, f)
			i++
		case '}', ']':
			stack = stack[:len(stack)-1]
			i++
		case ',':
			if top := &stack[len(stack)-1]; top.array {
				top.index++
			}
			i++
		case '"':
			end := stringEnd(body, i)
			j := end
			for j < len(body) && strings.IndexByte(" \t\r\n", body[j]) >= 0 {
				j++
			}
			if j < len(body) && body[j] == ':' {
				if msg := stack[len(stack)-1].member(memberName(body[i:end]), stack); msg != "" {
					return msg
				}
			}
			i = end
		default:
			i++
		}
	}
	return ""
}

// member records the member name of the innermost object, stack's top.
func (f *memberFrame) member(name string, stack []memberFrame) string {
	if f.has(name) {
		return "member " + memberPath(stack, name) + " appears twice"
	}
	f.add(name)
	f.key, f.next = name, nil
	if f.typ == nil {
		return ""
	}
	for _, field := range fieldsOf(f.typ) {
		switch {
		case field.name == name:
			f.next = field.typ
		case strings.EqualFold(field.name, name):
			return "member " + memberPath(stack, name) + " must be spelled " + field.name + " (member names are case-sensitive)"
		}
	}
	return ""
}

type field struct {
	name string // as encoding/json names it
	typ  reflect.Type
}

// fields caches fieldsOf: a bulk lookup asks for its entries' fields
// thousands of times.
var fields sync.Map // reflect.Type → []field

// fieldsOf lists the members of the struct type t.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fields.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		fs = append(fs, field{name, f.Type})
	}
	fields.Store(t, fs)
	return fs
}

func (f *memberFrame) has(name string) bool {
	if f.set != nil {
		return f.set[name]
	}
	for _, n := range f.names {
		if n == name {
			return true
		}
	}
	return false
}

// add remembers name; past a few names a map keeps the walk linear.
func (f *memberFrame) add(name string) {
	if f.set == nil && len(f.names) < 16 {
		f.names = append(f.names, name)
		return
	}
	if f.set == nil {
		f.set = make(map[string]bool, 32)
		for _, n := range f.names {
			f.set[n] = true
		}
	}
	f.set[name] = true
}

// memberPath spells the member name of the innermost object, as in
// "user.password" or "lookup[2].medium".
func memberPath(stack []memberFrame, name string) string {
	var b strings.Builder
	for _, f := range stack[:len(stack)-1] {
		if f.array {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(f.key)
	}
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.WriteString(name)
	return b.String()
}

// stringEnd returns the index after the JSON string starting at body[i].
func stringEnd(body []byte, i int) int {
	for i++; i < len(body); i++ {
		switch body[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(body)
}

// memberName is the name a quoted member name decodes to, as
// encoding/json decodes it (escapes resolved, invalid UTF-8 replaced),
// so that "pass\u0077ord" is "password".
func memberName(quoted []byte) string {
	plain := true
	for _, c := range quoted {
		if c == '\\' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return string(quoted[1 : len(quoted)-1])
	}
	var name string
	json.Unmarshal(quoted, &name) // valid: body passed json.Valid
	return name
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// DecodeMatrixRequest is decode for mxidp's other Matrix doors (the
// client-server API's /login, /logout, /refresh): nil, or the HTTP
// status, Matrix errcode and message of the refusal.
func DecodeMatrixRequest(body []byte, v any) (refused bool, status int, errcode, message string) {
	if e := decode(body, v); e != nil {
		return true, e.status, e.err.Errcode, e.err.Error
	}
	return false, 0, "", ""
}
