package storage

import (
	"reflect"
	"strings"
	"testing"
)

func TestMySQLPositional(t *testing.T) {
	args := []any{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	for _, tc := range []struct {
		name, query, want string
		args              []any
		wantArgs          []any
		err               string
	}{
		{name: "in order", query: `SELECT * FROM t WHERE a = $1 LIMIT $2`, args: args[:2],
			want: `SELECT * FROM t WHERE a = ? LIMIT ?`, wantArgs: []any{"a", "b"}},
		{name: "repeated", query: `WHERE login = $1 OR email = $1`, args: args[:1],
			want: `WHERE login = ? OR email = ?`, wantArgs: []any{"a", "a"}},
		{name: "out of order", query: `LIMIT $2 OFFSET $1`, args: args[:2],
			want: `LIMIT ? OFFSET ?`, wantArgs: []any{"b", "a"}},
		{name: "NULL arguments", query: `x = $1 AND y = $2`, args: []any{nil, 0},
			want: `x = ? AND y = ?`, wantArgs: []any{nil, 0}},
		{name: "an unused parameter", query: `x = $2`, args: args[:2],
			want: `x = ?`, wantArgs: []any{"b"}},
		{name: "$10 is the tenth", query: `x IN ($1, $10)`, args: args,
			want: `x IN (?, ?)`, wantArgs: []any{"a", "j"}},
		{name: "string literals", query: `x = '$1' AND y = "$1" AND z = $1`, args: args[:1],
			want: `x = '$1' AND y = "$1" AND z = ?`, wantArgs: []any{"a"}},
		{name: "escaped quotes", query: `x = 'it''s $1' AND y = 'it\'s $1' AND z = '\\' AND w = $1`, args: args[:1],
			want: `x = 'it''s $1' AND y = 'it\'s $1' AND z = '\\' AND w = ?`, wantArgs: []any{"a"}},
		{name: "LIKE with ESCAPE", query: `login LIKE CONCAT($1, '%') ESCAPE '\\' OR name LIKE CONCAT('%', $1, '%') ESCAPE '\\' LIMIT $2`, args: args[:2],
			want: `login LIKE CONCAT(?, '%') ESCAPE '\\' OR name LIKE CONCAT('%', ?, '%') ESCAPE '\\' LIMIT ?`, wantArgs: []any{"a", "a", "b"}},
		{name: "backticks", query: "SELECT `$1`, `a``$1` FROM t WHERE x = $1", args: args[:1],
			want: "SELECT `$1`, `a``$1` FROM t WHERE x = ?", wantArgs: []any{"a"}},
		{name: "comments", query: "SELECT 1 -- $1 here\nFROM t # and $2\nWHERE x = $1 /* $2 */ AND y = 2--$2", args: args[:2],
			want: "SELECT 1 -- $1 here\nFROM t # and $2\nWHERE x = ? /* $2 */ AND y = 2--?", wantArgs: []any{"a", "b"}},
		{name: "a comment at the end", query: "x = $1 --", args: args[:1],
			want: "x = ? --", wantArgs: []any{"a"}},
		{name: "executable comments are code", query: "x = $1 /*!50000 AND y = $2 */", args: args[:2],
			want: "x = ? /*!50000 AND y = ? */", wantArgs: []any{"a", "b"}},
		{name: "$ inside a name", query: "SELECT a$1, $ FROM t WHERE x = $1", args: args[:1],
			want: "SELECT a$1, $ FROM t WHERE x = ?", wantArgs: []any{"a"}},
		{name: "no parameters", query: "SELECT 1", args: nil, want: "SELECT 1", wantArgs: []any{}},
		{name: "beyond the arguments", query: "x = $3", args: args[:2], err: "$3"},
		{name: "$10 with nine arguments", query: "x = $10", args: args[:9], err: "$10"},
		{name: "$0", query: "x = $0", args: args[:1], err: "$0"},
		{name: "a ? of its own", query: "x = ? OR y = $1", args: args[:1], err: "?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, gotArgs, err := mysqlPositional(tc.query, tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("= %q, %v, %v; want an error naming %s", got, gotArgs, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || !reflect.DeepEqual(gotArgs, tc.wantArgs) {
				t.Errorf("=\n %q, %#v, %v\nwant\n %q, %#v", got, gotArgs, err, tc.want, tc.wantArgs)
			}
		})
	}
}

func TestMySQLConfig(t *testing.T) {
	for _, tc := range []struct {
		url, net, addr, user, pass, db string
	}{
		{"mysql://wp:s%40cret@db.example.org/wordpress", "tcp", "db.example.org:3306", "wp", "s@cret", "wordpress"},
		{"mysql://wp:pw@127.0.0.1:3307/wp", "tcp", "127.0.0.1:3307", "wp", "pw", "wp"},
		{"mysql://wp:pw@[::1]/wp", "tcp", "[::1]:3306", "wp", "pw", "wp"},
		{"mysql://wp@/wp?socket=/run/mysqld/mysqld.sock", "unix", "/run/mysqld/mysqld.sock", "wp", "", "wp"},
	} {
		cfg, err := MySQLConfig(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if cfg.Net != tc.net || cfg.Addr != tc.addr || cfg.User != tc.user || cfg.Passwd != tc.pass || cfg.DBName != tc.db || cfg.ParseTime || cfg.Timeout == 0 {
			t.Errorf("%s: %+v", tc.url, cfg)
		}
	}
	for _, bad := range []string{
		"mysql:///wp",                        // no host, no socket
		"mysql://h/wp?socket=/s",             // both
		"mysql://h/wp?sslmode=disable",       // an unknown parameter
		"mysql://h/wp?tls=maybe",             // an unknown tls value
		"mysql://h/a/b",                      // not one database name
		"postgres://h/wp",                    // another kind
		"mysql://u:p@h/wp?socket=/s&x=%zz%%", // not a URL
	} {
		if _, err := MySQLConfig(bad); err == nil {
			t.Errorf("%s accepted", bad)
		} else if strings.Contains(err.Error(), ":p@") {
			t.Errorf("%s: the message shows the password: %v", bad, err)
		}
	}
	if _, _, err := openDB("mysql://u:p@h/wp", Options{}); err == nil || !strings.Contains(err.Error(), "only as a platform database") {
		t.Errorf("mxidp's own database on MySQL: %v", err)
	}
	if got := RedactURL("mysql://wp:secret@/wp?socket=/run/mysqld/mysqld.sock"); got != "mysql://wp:xxxxx@/wp?socket=/run/mysqld/mysqld.sock" {
		t.Errorf("RedactURL = %s", got)
	}
}

// mysqlPositional applies mysqlPlaceholders to a query and its arguments,
// as Platform.query does with the rewrite made at start-up.
func mysqlPositional(query string, args []any) (string, []any, error) {
	q, order, err := mysqlPlaceholders(query, len(args))
	if err != nil {
		return "", nil, err
	}
	return q, reorder(args, order), nil
}
