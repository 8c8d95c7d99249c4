package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// The platform's own user table, read in place (users.source: platform):
// a Django-shaped auth_user on PostgreSQL whose password hashes Debian's
// python3-django and python3-passlib make at test time.

// requirePython checks that Debian's Python imports modules; without them
// the test fails where the suite must be complete (make test and CI set
// MXIDP_TEST_POSTGRES_REQUIRED=1) and is skipped elsewhere.
func requirePython(t *testing.T, modules, packages string) {
	t.Helper()
	out, err := exec.Command(authlibPython, "-c", "import "+modules).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("%s cannot import %s (%v: %s); install them with: apt-get install %s",
			authlibPython, modules, err, strings.TrimSpace(string(out)), packages)
		if os.Getenv("MXIDP_TEST_POSTGRES_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// platformHashes has testdata/platform_hashes.py hash each password with
// its scheme ("django:argon2", "passlib:phpass", ...).
func platformHashes(t *testing.T, items []map[string]any) []string {
	t.Helper()
	requirePython(t, "django, passlib, bcrypt, argon2", "python3-django python3-passlib python3-bcrypt python3-argon2")
	in, _ := json.Marshal(items)
	cmd := exec.Command(authlibPython, "testdata/platform_hashes.py")
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("platform_hashes.py: %v", err)
	}
	var hashes []string
	if err := json.Unmarshal(out, &hashes); err != nil || len(hashes) != len(items) {
		t.Fatalf("platform_hashes.py printed %s (%v)", out, err)
	}
	for i, h := range hashes {
		noteSecret(h)
		noteSecret(items[i]["password"].(string))
	}
	return hashes
}

// platformUser is an account of the test platform and how its hash is made.
type platformUser struct {
	storagetest.DjangoUser
	password, scheme string
	rounds           int
	localpart        string
}

func platformUsers(t *testing.T) []platformUser {
	users := []platformUser{
		{DjangoUser: storagetest.DjangoUser{ID: 1, Username: "alice", First: "Alice", Last: "Liddell", Email: "Alice.Liddell@Example.COM", EmailVerified: true, Groups: []string{"staff"}},
			password: "Wonder-Land-42", scheme: "django:pbkdf2_sha256", localpart: "alice"},
		{DjangoUser: storagetest.DjangoUser{ID: 2, Username: "Bob", First: "Bob", Last: "Builder", Email: "bob@example.net"},
			password: "builder-99", scheme: "django:argon2", localpart: "bob"},
		{DjangoUser: storagetest.DjangoUser{ID: 3, Username: "carol", First: "Carol"},
			password: "pässwörd-Ω", scheme: "django:bcrypt_sha256", localpart: "carol"},
		{DjangoUser: storagetest.DjangoUser{ID: 4, Username: "dave"},
			password: "dave-pass-1", scheme: "django:pbkdf2_sha1", localpart: "dave"},
		{DjangoUser: storagetest.DjangoUser{ID: 5, Username: "erin"},
			password: "erin-pass-1", scheme: "passlib:sha512_crypt", rounds: 5000, localpart: "erin"},
		{DjangoUser: storagetest.DjangoUser{ID: 6, Username: "frank"},
			password: "frank-pass-1", scheme: "passlib:phpass", localpart: "frank"},
		{DjangoUser: storagetest.DjangoUser{ID: 7, Username: "grace"},
			password: "grace-pass-1", scheme: "passlib:bcrypt", localpart: "grace"},
	}
	var items []map[string]any
	for _, u := range users {
		item := map[string]any{"scheme": u.scheme, "password": u.password}
		if u.rounds > 0 {
			item["rounds"] = u.rounds
		}
		items = append(items, item)
	}
	for i, h := range platformHashes(t, items) {
		users[i].Password, users[i].Active = h, true
	}
	return users
}

// platformWrites counts the rows inserted, updated and deleted in the
// platform database's tables, as PostgreSQL's statistics count them, and
// the scans that read them (to show that the counters are live).
func platformWrites(t *testing.T, db *sql.DB) (writes, reads int64) {
	t.Helper()
	err := db.QueryRow(`SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0),
		COALESCE(SUM(seq_scan + COALESCE(idx_scan, 0)), 0) FROM pg_stat_user_tables`).Scan(&writes, &reads)
	if err != nil {
		t.Fatal(err)
	}
	return writes, reads
}

// settledWrites waits until the statistics stop moving (backends report
// theirs when a transaction ends or they exit, within a second or so).
func settledWrites(t *testing.T, db *sql.DB) (writes, reads int64) {
	t.Helper()
	w, r := platformWrites(t, db)
	for range 50 {
		time.Sleep(200 * time.Millisecond)
		w2, r2 := platformWrites(t, db)
		if w2 == w && r2 == r {
			return w, r
		}
		w, r = w2, r2
	}
	return w, r
}

func platformConfig(url string, q storage.PlatformQueries) string {
	return `matrix:
  server_name: example.org
rest:
  enabled: true
  expose_profile_threepids: true
` + platformUsersYAML(url, q, "1s")
}

// platformUsersYAML is the users section that reads the platform's table
// at url with queries q; checkInterval "" leaves the default.
func platformUsersYAML(url string, q storage.PlatformQueries, checkInterval string) string {
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	interval := ""
	if checkInterval != "" {
		interval = "    check_interval: " + checkInterval + "\n"
	}
	return fmt.Sprintf("users:\n  source: platform\n  platform:\n    database: %s\n%s"+
		"    queries:\n      by_login: %s\n      by_id: %s\n      by_email: %s\n      search: %s\n",
		quote(url), interval, quote(q.ByLogin), quote(q.ByID), quote(q.ByEmail), quote(q.Search))
}

// startNextGenOnDjango starts next-gen auth with its users read from a
// Django-shaped platform table on backend holding users; extraYAML goes
// under matrix: first (indented), as startNextGen's does. It returns the
// environment and the platform's database.
func startNextGenOnDjango(t *testing.T, backend string, users []platformUser, checkInterval, extraYAML string) (*nextGenEnv, *sql.DB) {
	t.Helper()
	platformURL, db := storagetest.DjangoPlatform(t, backend)
	for _, u := range users {
		storagetest.AddDjangoUsers(t, db, u.DjangoUser)
	}
	n := startNextGenNoAlice(t, backend, extraYAML+platformUsersYAML(platformURL, storagetest.DjangoQueries(backend), checkInterval))
	return n, db
}

func TestPlatformUsersLogInThroughOpenIDAndRESTWithoutAWrite(t *testing.T) {
	users := platformUsers(t)
	platformURL, db := storagetest.DjangoPlatform(t, "postgres")
	for _, u := range users {
		storagetest.AddDjangoUsers(t, db, u.DjangoUser)
	}
	stats, err := sql.Open("pgx", platformURL)
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	db.Close() // its statistics are reported when it disconnects
	writesBefore, readsBefore := settledWrites(t, stats)

	env := testEnv(t, "postgres", "keys:\n  refresh_interval: 100ms\n"+platformConfig(platformURL, storagetest.DjangoQueries("postgres")))
	env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
	env["MXIDP_LISTEN"] = "127.0.0.1:0"
	d := &deployment{t: t, env: env}
	s := d.startOnFreePort()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := &openIDEnv{t: t, ctx: ctx, d: d}
	e.connect(s)

	// Every hash format logs in through check_credentials, as the
	// canonical localpart of the platform's username.
	for _, u := range users {
		got := postJSON(t, s.url+ccPath, cc("@"+u.localpart+":example.org", u.password))
		if dig(got, "auth", "success") != true || dig(got, "auth", "mxid") != "@"+u.localpart+":example.org" {
			t.Errorf("%s (%s): check_credentials = %v", u.Username, u.scheme, got)
		}
		if got := postJSON(t, s.url+ccPath, cc("@"+u.localpart+":example.org", u.password+"x")); dig(got, "auth", "success") != false {
			t.Errorf("%s (%s): a wrong password passed: %v", u.Username, u.scheme, got)
		}
	}
	if got := postJSON(t, s.url+ccPath, cc("@Bob:example.org", "builder-99")); dig(got, "auth", "success") != false {
		t.Errorf("the platform's spelling @Bob passed: %v", got)
	}

	// One identity: the OpenID login of alice has her platform id as sub
	// and her localpart as preferred_username.
	rp := newLogoutReceiver(t)
	c := e.addClient("synapse", "--backchannel-logout-uri", rp.url)
	cfg := e.config(c, oauth2.AuthStyleInHeader, "openid", "profile", "email", "groups")
	b := newBrowser(t)
	l := e.exchange(cfg, e.authorizeWith(b, cfg, randomAlnum(30), []string{users[0].password}))
	if l.idToken.Subject != "1" || l.claims.PreferredUsername != "alice" || l.claims.Email != "alice.liddell@example.com" {
		t.Errorf("ID token sub %q, preferred_username %q, email %q; want 1, alice, alice.liddell@example.com",
			l.idToken.Subject, l.claims.PreferredUsername, l.claims.Email)
	}
	rest := postJSON(t, s.url+ccPath, cc("@alice:example.org", users[0].password))
	if dig(rest, "auth", "mxid") != "@"+l.claims.PreferredUsername+":example.org" {
		t.Errorf("check_credentials says %v, the ID token says %s", dig(rest, "auth", "mxid"), l.claims.PreferredUsername)
	}
	if got := postJSON(t, s.url+"/_ma1sd/backend/api/v1/directory/user/search", `{"by":"name","search_term":"liddell"}`); len(userIDs(got)) != 1 || userIDs(got)[0] != "alice" {
		t.Errorf("directory search for liddell = %v", got)
	}
	if got := postJSON(t, s.url+"/_ma1sd/backend/api/v1/profile/roles", pr("alice")); fmt.Sprint(dig(got, "profile", "roles")) != "[staff]" {
		t.Errorf("roles = %v; want [staff]", got)
	}

	// The platform disables alice: within users.platform.check_interval her
	// sessions end with a back-channel logout, and her password stops
	// working at once.
	admin, err := sql.Open("pgx", platformURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`UPDATE auth_user SET is_active = FALSE WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	e.checkLogoutToken(rp.wait(t, 10*time.Second), c.id, l)
	e.wantUserinfoRefused("the access token of a user the platform disabled", l.token.AccessToken)
	if got := postJSON(t, s.url+ccPath, cc("@alice:example.org", users[0].password)); dig(got, "auth", "success") != false {
		t.Errorf("a disabled platform user passed check_credentials: %v", got)
	}

	// mxidp wrote nothing: the only write is the test's own UPDATE.
	if code := s.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("mxidp exited %d", code)
	}
	writesAfter, readsAfter := settledWrites(t, stats)
	if writesAfter-writesBefore != 1 {
		t.Errorf("the platform database saw %d row writes; want 1 (the test's own UPDATE)", writesAfter-writesBefore)
	}
	if readsAfter <= readsBefore {
		t.Errorf("no reads counted (%d → %d): the statistics are not live, so the write count proves nothing", readsBefore, readsAfter)
	}
	t.Logf("platform database: %d reads, %d writes by mxidp", readsAfter-readsBefore, writesAfter-writesBefore-1)
}

func TestServeRefusesPlatformQueriesThatDoNotFitWithExitTwo(t *testing.T) {
	platformURL, _ := storagetest.DjangoPlatform(t, "sqlite")
	cfg := strings.Replace(platformConfig(platformURL, storagetest.DjangoQueries("postgres")), "u.password AS password_hash", "u.password", 1)
	cfg = strings.ReplaceAll(cfg, "string_agg(g.name, ',' ORDER BY g.name)", "group_concat(g.name, ',')")
	c := &cli{t: t, env: testEnv(t, "sqlite", cfg)}
	status, _, errOut := c.run("", "serve")
	if status != 2 || !strings.Contains(errOut, `users.platform.queries.by_login: returns no column "password_hash"`) ||
		!strings.Contains(errOut, "add AS password_hash") {
		t.Errorf("serve with a query lacking password_hash: exit %d\n%s", status, errOut)
	}
}

// The WordPress example of docs/platform.md on MariaDB: users with
// WordPress's two hash formats (phpass before 6.8, $wp$ bcrypt since) log
// in through check_credentials, with their roles as groups.
func TestWordPressUsersOnMariaDBLogIn(t *testing.T) {
	hashes := platformHashes(t, []map[string]any{
		{"scheme": "passlib:phpass", "password": "Wonder-Land-42"},
		{"scheme": "wordpress:bcrypt", "password": "builder-99 with a long passphrase that bcrypt alone would cut after seventy-two bytes"},
	})
	url, db := storagetest.WordPressPlatform(t)
	storagetest.AddWordPressUsers(t, db,
		storagetest.WordPressUser{ID: 1, Login: "alice", Pass: hashes[0], Email: "alice@example.com", DisplayName: "Alice Liddell", Roles: []string{"administrator"}},
		storagetest.WordPressUser{ID: 2, Login: "Bob", Pass: hashes[1], Email: "bob@example.net", DisplayName: "Bob Builder", Roles: []string{"subscriber"}},
		storagetest.WordPressUser{ID: 3, Login: "Max Mustermann", Pass: hashes[0], Email: "max@example.org", DisplayName: "Max"},
	)
	env := testEnv(t, "sqlite", platformConfig(url, storagetest.WordPressQueries()))
	env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
	env["MXIDP_LISTEN"] = "127.0.0.1:0"
	s := (&deployment{t: t, env: env}).start()
	for _, c := range []struct {
		mxid, pw string
		ok       bool
	}{
		{"@alice:example.org", "Wonder-Land-42", true},
		{"@alice:example.org", "wonder-land-42", false},
		{"@bob:example.org", "builder-99 with a long passphrase that bcrypt alone would cut after seventy-two bytes", true},
		{"@bob:example.org", "builder-99 with a long passphrase that bcrypt alone would cut after seventy-two bytes!", false}, // differs after byte 72
		{"@max mustermann:example.org", "Wonder-Land-42", false},                                                              // no Matrix localpart
	} {
		got := postJSON(t, s.url+ccPath, cc(c.mxid, c.pw))
		if dig(got, "auth", "success") != c.ok {
			t.Errorf("%s: %v; want success %v", c.mxid, got, c.ok)
		}
	}
	if got := postJSON(t, s.url+"/_ma1sd/backend/api/v1/profile/roles", pr("alice")); fmt.Sprint(dig(got, "profile", "roles")) != "[administrator]" {
		t.Errorf("alice's roles = %v; want [administrator]", got)
	}
	if got := postJSON(t, s.url+"/_ma1sd/backend/api/v1/directory/user/search", `{"by":"name","search_term":"builder"}`); fmt.Sprint(userIDs(got)) != "[bob]" {
		t.Errorf("directory search for builder = %v", got)
	}
}
