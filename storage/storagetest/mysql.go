package storagetest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/mxidp/mxidp/storage"
)

// MySQLEnv names the variable holding the mysql:// URL of a MariaDB or
// MySQL server on which tests may create (and drop) databases named
// mxidp_test_* (make test sets it: .ci/with-mariadb). MySQL is only ever a
// platform's database, so only the platform tests use it. RequiredEnv
// turns its absence into a failure too.
const MySQLEnv = "MXIDP_TEST_MYSQL"

// MySQLURL returns the mysql:// URL of a new, empty database on the
// MXIDP_TEST_MYSQL server, dropped when the test ends.
func MySQLURL(t testing.TB) string {
	return throwawayDatabase(t, testServer{
		env: MySQLEnv, what: "MySQL/MariaDB", starts: "make test does, with .ci/with-mariadb",
		open: openMySQLDB,
		// WordPress's own character set and collation.
		create: "CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci",
		drop:   "DROP DATABASE IF EXISTS %s",
	})
}

// openMySQL opens a writable pool on a mysql:// URL (storage opens
// MySQL read-only only).
func openMySQL(t testing.TB, rawURL string) *sql.DB {
	t.Helper()
	db, err := openMySQLDB(rawURL)
	if err != nil {
		t.Fatalf("%s: %v", MySQLEnv, err)
	}
	return db
}

func openMySQLDB(rawURL string) (*sql.DB, error) {
	cfg, err := storage.MySQLConfig(rawURL)
	if err != nil {
		return nil, err
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// A WordPress-shaped platform database: wp_users and wp_usermeta as
// wp-admin/includes/schema.php creates them (user_registered defaults to a
// real date here, since MySQL 8's default sql_mode refuses the zero date),
// with the roles in the wp_capabilities meta value as WordPress stores it,
// a PHP-serialized array: a:1:{s:13:"administrator";b:1;}.
var wordpressSchema = []string{`
CREATE TABLE wp_users (
  ID bigint(20) unsigned NOT NULL auto_increment,
  user_login varchar(60) NOT NULL default '',
  user_pass varchar(255) NOT NULL default '',
  user_nicename varchar(50) NOT NULL default '',
  user_email varchar(100) NOT NULL default '',
  user_url varchar(100) NOT NULL default '',
  user_registered datetime NOT NULL default '2000-01-01 00:00:00',
  user_activation_key varchar(255) NOT NULL default '',
  user_status int(11) NOT NULL default '0',
  display_name varchar(250) NOT NULL default '',
  PRIMARY KEY  (ID),
  KEY user_login_key (user_login),
  KEY user_nicename (user_nicename),
  KEY user_email (user_email)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci`, `
CREATE TABLE wp_usermeta (
  umeta_id bigint(20) unsigned NOT NULL auto_increment,
  user_id bigint(20) unsigned NOT NULL default '0',
  meta_key varchar(255) default NULL,
  meta_value longtext,
  PRIMARY KEY  (umeta_id),
  KEY user_id (user_id),
  KEY meta_key (meta_key(191))
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci`,
}

// WordPressRoles are the roles a WordPress site has out of the box; the
// groups column of WordPressQueries names those a user holds.
var WordPressRoles = []string{"administrator", "editor", "author", "contributor", "subscriber"}

// WordPressQueries returns the four platform queries for a WordPress
// database whose table prefix is wp_ (MySQL syntax; mxidp turns $1, $2
// into ? for MySQL). WordPress's tables compare case-insensitively
// (utf8mb4_unicode_520_ci), so = and LIKE ignore case and use the indexes.
//
//   - email_verified is true for every address: WordPress confirms an
//     address before it becomes the account's (registration mails the
//     password link there; a changed address takes effect only once its
//     confirmation link is followed).
//   - disabled is false: single-site WordPress has no flag for a disabled
//     account (multisite has wp_users.spam and .deleted; use
//     "u.spam <> 0 OR u.deleted <> 0 AS disabled" there).
//   - groups lists the standard roles held, in the order of WordPressRoles,
//     read from the serialized wp_capabilities value.
func WordPressQueries() storage.PlatformQueries {
	var roles []string
	for _, r := range WordPressRoles {
		roles = append(roles, fmt.Sprintf(`CASE WHEN m.meta_value LIKE '%%"%s";b:1;%%' THEN '%s' END`, r, r))
	}
	// groups is a reserved word in MySQL 8: quoted.
	base := `SELECT u.ID AS id, u.user_login AS username, u.user_pass AS password_hash,
       u.user_email AS email,
       u.user_email <> '' AS email_verified,
       u.display_name AS display_name,
       FALSE AS disabled,
       (SELECT CONCAT_WS(',', ` + strings.Join(roles, ",\n                         ") + `)
        FROM wp_usermeta m WHERE m.user_id = u.ID AND m.meta_key = 'wp_capabilities') AS ` + "`groups`" + `
FROM wp_users u
`
	return storage.PlatformQueries{
		ByLogin: base + `WHERE u.user_login = $1 OR u.user_email = $1`,
		ByID:    base + `WHERE u.ID = $1`,
		ByEmail: base + `WHERE u.user_email = $1`,
		Search: base + `WHERE u.user_login LIKE CONCAT($1, '%') ESCAPE '\\'
   OR u.display_name LIKE CONCAT('%', $1, '%') ESCAPE '\\'
ORDER BY u.user_login
LIMIT $2`,
	}
}

// WordPressPlatform makes an empty WordPress-shaped database on the
// MXIDP_TEST_MYSQL server, removed when the test ends, and returns its URL
// and a writable handle to fill it with.
func WordPressPlatform(t testing.TB) (string, *sql.DB) {
	t.Helper()
	url := MySQLURL(t)
	db := openMySQL(t, url)
	t.Cleanup(func() { db.Close() })
	for _, stmt := range wordpressSchema {
		if _, err := db.ExecContext(context.Background(), stmt); err != nil {
			t.Fatalf("create the WordPress tables: %v", err)
		}
	}
	return url, db
}

// WordPressUser is a row of wp_users with its roles.
type WordPressUser struct {
	ID                 int
	Login, Pass        string // Pass is the stored hash, in WordPress's format
	Email, DisplayName string
	Roles              []string
}

// AddWordPressUsers inserts users as WordPress would: the row, a nicename
// derived from the login, and the roles as a serialized wp_capabilities.
func AddWordPressUsers(t testing.TB, db *sql.DB, users ...WordPressUser) {
	t.Helper()
	ctx := context.Background()
	for _, u := range users {
		nicename := strings.ToLower(strings.ReplaceAll(u.Login, " ", "-"))
		if _, err := db.ExecContext(ctx, `INSERT INTO wp_users (ID, user_login, user_pass, user_nicename, user_email, display_name, user_registered)
VALUES (?, ?, ?, ?, ?, ?, NOW())`, u.ID, u.Login, u.Pass, nicename, u.Email, u.DisplayName); err != nil {
			t.Fatalf("insert %s: %v", u.Login, err)
		}
		caps := fmt.Sprintf("a:%d:{", len(u.Roles))
		for _, r := range u.Roles {
			caps += fmt.Sprintf(`s:%d:"%s";b:1;`, len(r), r)
		}
		caps += "}"
		if _, err := db.ExecContext(ctx, `INSERT INTO wp_usermeta (user_id, meta_key, meta_value) VALUES (?, 'wp_capabilities', ?), (?, 'nickname', ?)`,
			u.ID, caps, u.ID, u.Login); err != nil {
			t.Fatalf("insert the roles of %s: %v", u.Login, err)
		}
	}
}
