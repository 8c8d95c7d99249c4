package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQL and MariaDB are supported only as a platform's database
// (users.platform.database), read in place and read-only: PHP platforms
// such as WordPress, phpBB and Drupal keep their users there. mxidp's own
// database is SQLite or PostgreSQL.
//
// The URL forms are
//
//	mysql://USER:PASSWORD@HOST[:PORT]/DBNAME             (TCP; port 3306 by default)
//	mysql://USER:PASSWORD@/DBNAME?socket=/run/mysqld/mysqld.sock  (Unix socket)
//
// with the user name and password percent-encoded as in any URL. The only
// other parameter is tls=true|skip-verify|preferred|false (the driver's
// meanings; default false).

// IsMySQLURL reports whether url names a MySQL or MariaDB database.
func IsMySQLURL(url string) bool {
	return strings.HasPrefix(url, "mysql://")
}

var mysqlDialect = dialect{name: "mysql"}

// MySQLConfig turns a mysql:// URL (see IsMySQLURL) into the driver's
// configuration: utf8mb4, a connect timeout, times left as text. The
// connection it describes is not yet read-only; openDB makes it so.
func MySQLConfig(raw string) (*mysql.Config, error) {
	u, err := url.Parse(raw)
	if err != nil || !IsMySQLURL(raw) {
		return nil, fmt.Errorf("%q is no mysql://USER:PASSWORD@HOST/DBNAME URL", RedactURL(raw))
	}
	cfg := mysql.NewConfig()
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if strings.Contains(cfg.DBName, "/") {
		return nil, fmt.Errorf("%q: the path must be one database name", RedactURL(raw))
	}
	q := u.Query()
	socket := q.Get("socket")
	switch {
	case socket != "" && u.Host != "":
		return nil, fmt.Errorf("%q names both a host and a socket; use mysql://USER:PASSWORD@/DBNAME?socket=PATH for a Unix socket", RedactURL(raw))
	case socket != "":
		cfg.Net, cfg.Addr = "unix", socket
	case u.Host == "":
		return nil, fmt.Errorf("%q names no host; use mysql://USER:PASSWORD@HOST/DBNAME, or ?socket=PATH for a Unix socket", RedactURL(raw))
	default:
		cfg.Net, cfg.Addr = "tcp", u.Host
		if u.Port() == "" {
			cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
		}
	}
	for k, v := range q {
		switch k {
		case "socket":
		case "tls":
			switch v[0] {
			case "true", "false", "skip-verify", "preferred":
				cfg.TLSConfig = v[0]
			default:
				return nil, fmt.Errorf("%q: tls=%s; use true, skip-verify, preferred or false", RedactURL(raw), v[0])
			}
		default:
			return nil, fmt.Errorf("%q: unknown parameter %q (mxidp takes socket and tls)", RedactURL(raw), k)
		}
	}
	cfg.ParseTime = false
	cfg.Timeout = 10 * time.Second
	if err := cfg.Apply(mysql.Charset("utf8mb4", "")); err != nil {
		return nil, err
	}
	return cfg, nil
}

// openMySQL opens a pool whose every connection runs SET SESSION
// TRANSACTION READ ONLY first: the server then refuses any write to a
// table in that session (error 1792, "Cannot execute statement in a READ
// ONLY transaction"), on MySQL and MariaDB alike, whatever the account may
// do.
func openMySQL(raw string, opts Options) (*sql.DB, error) {
	if !opts.ReadOnly {
		return nil, errors.New("MySQL/MariaDB is supported only as a platform database (users.platform.database); mxidp's own database is sqlite:// or postgres://")
	}
	cfg, err := MySQLConfig(raw)
	if err != nil {
		return nil, err
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open mysql %s: %w", RedactURL(raw), err)
	}
	db := sql.OpenDB(readOnlyConnector{c})
	db.SetMaxOpenConns(opts.MaxOpenConns)
	db.SetMaxIdleConns(opts.MaxOpenConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// readOnlyConnector makes every new connection read-only before the pool
// hands it out.
type readOnlyConnector struct{ driver.Connector }

func (c readOnlyConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	exec, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("mysql: the driver cannot make the connection read-only")
	}
	if _, err := exec.ExecContext(ctx, "SET SESSION TRANSACTION READ ONLY", nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("mysql: make the session read-only: %w", err)
	}
	return conn, nil
}

// mysqlPlaceholders rewrites a query written with PostgreSQL's positional
// parameters ($1, $2, …, as the platform query contract has them) for
// MySQL, which takes ? in order: each $N outside string literals, quoted
// identifiers and comments becomes ?, and order lists, for each ?, the index of
// its argument among nargs, so "$1 … $1" gives [0, 0]. A $N
// with no argument, or a ? of the query's own, is an error. Strings follow
// MySQL's default sql_mode: backslash escapes inside quotes.
func mysqlPlaceholders(query string, nargs int) (string, []int, error) {
	var b strings.Builder
	var order []int
	n := len(query)
	for i := 0; i < n; {
		c := query[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			end := quotedEnd(query, i)
			b.WriteString(query[i:end])
			i = end
		case c == '#' || (c == '-' && strings.HasPrefix(query[i:], "--") && (i+2 == n || query[i+2] <= ' ')):
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				end = n - i
			}
			b.WriteString(query[i : i+end])
			i += end
		case c == '/' && strings.HasPrefix(query[i:], "/*") &&
			!strings.HasPrefix(query[i:], "/*!") && !strings.HasPrefix(query[i:], "/*M!"):
			// An ordinary comment; /*! … */ and /*M! … */ are code MySQL
			// and MariaDB run, so they are scanned as code.
			end := strings.Index(query[i+2:], "*/")
			if end < 0 {
				end = n
			} else {
				end += i + 4
			}
			b.WriteString(query[i:end])
			i = end
		case c == '?':
			return "", nil, errors.New("the query has a ? of its own; write parameters as $1, $2")
		case c == '$' && i+1 < n && isDigit(query[i+1]) && (i == 0 || !isIdentByte(query[i-1])):
			j := i + 1
			for j < n && isDigit(query[j]) {
				j++
			}
			k, err := strconv.Atoi(query[i+1 : j])
			if err != nil || k < 1 || k > nargs {
				return "", nil, fmt.Errorf("the query uses %s but has %d parameter(s)", query[i:j], nargs)
			}
			b.WriteByte('?')
			order = append(order, k-1)
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), order, nil
}

// reorder lists args in the order of a rewritten query's ?.
func reorder(args []any, order []int) []any {
	out := make([]any, len(order))
	for i, k := range order {
		out[i] = args[k]
	}
	return out
}

// quotedEnd returns the index just past the quoted string or identifier
// that begins at i: a doubled quote stays inside, and so does a
// backslash-escaped character in '…' and "…" strings. An unterminated one
// runs to the end.
func quotedEnd(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isIdentByte reports whether c can be part of an unquoted MySQL
// identifier (where $ is allowed: a$1 is a name, not a parameter).
func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || isDigit(c) || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z')
}
