package storagetest

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/storage"
)

// A Django-shaped platform database (django.contrib.auth plus
// django-allauth's e-mail addresses, as grouprise uses them), for tests of
// users.source: platform. DjangoQueries are the queries docs/platform.md
// shows for it.

const djangoSchema = `
CREATE TABLE auth_user (
    id           INTEGER      PRIMARY KEY,
    password     VARCHAR(128) NOT NULL,
    last_login   TIMESTAMP    NULL,
    is_superuser BOOLEAN      NOT NULL DEFAULT FALSE,
    username     VARCHAR(150) NOT NULL UNIQUE,
    first_name   VARCHAR(150) NOT NULL DEFAULT '',
    last_name    VARCHAR(150) NOT NULL DEFAULT '',
    email        VARCHAR(254) NOT NULL DEFAULT '',
    is_staff     BOOLEAN      NOT NULL DEFAULT FALSE,
    is_active    BOOLEAN      NOT NULL DEFAULT TRUE,
    date_joined  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE auth_group (
    id   INTEGER      PRIMARY KEY,
    name VARCHAR(150) NOT NULL UNIQUE
);
CREATE TABLE auth_user_groups (
    id       INTEGER PRIMARY KEY,
    user_id  INTEGER NOT NULL REFERENCES auth_user (id),
    group_id INTEGER NOT NULL REFERENCES auth_group (id)
);
CREATE TABLE account_emailaddress (
    id        INTEGER      PRIMARY KEY,
    user_id   INTEGER      NOT NULL REFERENCES auth_user (id),
    email     VARCHAR(254) NOT NULL,
    verified  BOOLEAN      NOT NULL,
    "primary" BOOLEAN      NOT NULL
);`

// DjangoQueries returns the four platform queries for the Django schema
// in one dialect ("postgres" or "sqlite"; they differ only in how the
// group names are collected).
func DjangoQueries(dialect string) storage.PlatformQueries {
	groups := `(SELECT string_agg(g.name, ',' ORDER BY g.name) FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id WHERE ug.user_id = u.id)`
	if dialect == "sqlite" {
		groups = `(SELECT group_concat(name, ',') FROM (SELECT g.name FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id WHERE ug.user_id = u.id ORDER BY g.name))`
	}
	base := `SELECT u.id, u.username, u.password AS password_hash, u.email,
       EXISTS (SELECT 1 FROM account_emailaddress e
               WHERE e.user_id = u.id AND lower(e.email) = lower(u.email) AND e.verified) AS email_verified,
       trim(u.first_name || ' ' || u.last_name) AS display_name,
       NOT u.is_active AS disabled,
       ` + groups + ` AS groups
FROM auth_user u
`
	return storage.PlatformQueries{
		ByLogin: base + `WHERE lower(u.username) = lower(CAST($1 AS TEXT)) OR lower(u.email) = lower(CAST($1 AS TEXT))`,
		ByID:    base + `WHERE u.id = CAST($1 AS INTEGER)`,
		ByEmail: base + `WHERE lower(u.email) = lower(CAST($1 AS TEXT))`,
		Search: base + `WHERE u.is_active
  AND (lower(u.username) LIKE CAST($1 AS TEXT) || '%' ESCAPE '\'
       OR lower(u.first_name || ' ' || u.last_name) LIKE '%' || CAST($1 AS TEXT) || '%' ESCAPE '\')
ORDER BY u.username
LIMIT $2`,
	}
}

// DjangoPlatform makes an empty Django-shaped database of the given kind,
// removed when the test ends, and returns its URL and an open handle to
// fill it with.
func DjangoPlatform(t testing.TB, backend string) (string, *sql.DB) {
	t.Helper()
	url := URL(t, backend)
	driver, dsn := "pgx", url
	if path, ok := storage.SQLitePath(url); ok {
		driver, dsn = "sqlite", path
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range strings.Split(djangoSchema, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.ExecContext(context.Background(), stmt); err != nil {
			t.Fatalf("create the Django tables: %v", err)
		}
	}
	return url, db
}

// DjangoUser is a row of auth_user with its e-mail verification and groups.
type DjangoUser struct {
	ID                 int
	Username, Password string // Password is the stored hash, in Django's format
	First, Last, Email string
	EmailVerified      bool
	Active             bool
	Groups             []string
}

// AddDjangoUsers inserts users (and the groups they name) as Django would.
func AddDjangoUsers(t testing.TB, db *sql.DB, users ...DjangoUser) {
	t.Helper()
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, u := range users {
		exec(`INSERT INTO auth_user (id, password, username, first_name, last_name, email, is_active) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			u.ID, u.Password, u.Username, u.First, u.Last, u.Email, u.Active)
		if u.Email != "" {
			exec(`INSERT INTO account_emailaddress (id, user_id, email, verified, "primary") VALUES ($1, $1, $2, $3, TRUE)`, u.ID, u.Email, u.EmailVerified)
		}
		for _, g := range u.Groups {
			var gid int
			err := db.QueryRowContext(ctx, `SELECT id FROM auth_group WHERE name = $1`, g).Scan(&gid)
			if err == sql.ErrNoRows {
				err = db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM auth_group`).Scan(&gid)
				exec(`INSERT INTO auth_group (id, name) VALUES ($1, $2)`, gid, g)
			}
			if err != nil {
				t.Fatal(err)
			}
			exec(`INSERT INTO auth_user_groups (id, user_id, group_id) VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM auth_user_groups), $1, $2)`, u.ID, gid)
		}
	}
}
