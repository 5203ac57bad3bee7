package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestCredentialsAreNeverEchoed(t *testing.T) {
	tests := []struct{ env, value, secret string }{
		{"SWR_UPSTREAM", "http://user:hunter2@origin", "hunter2"},
		{"SWR_UPSTREAM", "http://a, http://user:hunter2@b", "hunter2"},
		{"SWR_REDIS_URL", "redis://:hunter2@redis/db", "hunter2"},
		{"SWR_REDIS_URL", "redis://:hun#ter2@redis:6379/0", "ter2"},
		{"SWR_REDIS_URL", "user:hunter2@a:1", "hunter2"},
		{"SWR_REDIS_URL", "hunter2@a:1", "hunter2"},
		{"SWR_INVALIDATE_SECRET", "hunter2 ", "hunter2"},
		{"SWR_INVALIDATE_SECRET", "hun\tter2", "ter2"},
	}
	for _, tt := range tests {
		m := map[string]string{"SWR_UPSTREAM": "http://origin", tt.env: tt.value}
		_, err := load(env(m), nil)
		if err == nil {
			t.Errorf("%s=%q: Load succeeded, want an error", tt.env, tt.value)
			continue
		}
		if !strings.Contains(err.Error(), tt.env) || strings.Contains(err.Error(), tt.secret) {
			t.Errorf("%s=%q: error %q must name the variable and hide %q", tt.env, tt.value, err, tt.secret)
		}
	}
}

// The hardening issue: no working secret out of the box. A placeholder, a short or a repetitive
// secret stops start-up with a message that says how to make one; empty turns the endpoints off.
func TestAWeakInvalidationSecretStopsStartUp(t *testing.T) {
	for _, v := range []string{
		"change-me-to-a-long-random-string", // the old .env.example and docker-compose.yml default
		"CHANGEME-0123456789abcdef0123456789",
		"please-replace-me-with-something-long",
		"9f2c41d07be35a68e1c4",                 // 20 random bytes: too short
		"0123456789abcdef0123456789abcde",      // 31 bytes
		"abababababababababababababababababab", // long, but two characters
		// The security review's list:
		"abcdefghabcdefghabcdefghabcdefgh", "1234567812345678123456781234567812345678",
		"passwordpasswordpassword12345678", "supersecretsupersecretsupersecret123",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1234567", "${SWR_INVALIDATE_SECRET}aaaaaaaaaaaaaaaaaaaaaaaa",
		"ch\u0430nge-me-to-a-long-random-string", // with a Cyrillic а
	} {
		_, err := load(env(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_INVALIDATE_SECRET": v}), nil)
		if err == nil {
			t.Errorf("SWR_INVALIDATE_SECRET=%q accepted", v)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "SWR_INVALIDATE_SECRET") || !strings.Contains(msg, "openssl rand -hex 32") || strings.Contains(msg, v) {
			t.Errorf("SWR_INVALIDATE_SECRET=%q: error %q must name the setting and say how to make a secret, without echoing it", v, msg)
		}
	}
	for _, v := range []string{"", testSecret, "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
		"4f1c9e0b7a2d58e6c3b1a09f7e6d5c4b3a291807f6e5d4c3b2a1908f7e6d5c4b", // openssl rand -hex 32
		"q3Vt8Kx1Lp0Zs7Yw2Rn5Hd9Jf4Bg6Mc1Xa8Ue3Oi7Wl=",                     // openssl rand -base64 32
	} {
		c, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_INVALIDATE_SECRET": v}), nil)
		if err != nil || c.InvalidateSecret != v {
			t.Errorf("SWR_INVALIDATE_SECRET=%q: %q, %v; want it accepted", v, c.InvalidateSecret, err)
		}
	}
}

func TestLogValueMasksTheSecretAndTheRedisPassword(t *testing.T) {
	m := maps(allSet, map[string]string{"SWR_INVALIDATE_SECRET": "s3cr3t-" + testSecret, "SWR_REDIS_URL": "rediss://user:hunter2@redis:6379/0"})
	c := mustLoad(t, m)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("starting", "config", c)
	out := buf.String()
	for _, s := range []string{out, c.String(), fmt.Sprint(c), fmt.Sprintf("%v", c)} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "hunter2") {
			t.Errorf("output leaks a secret: %s", s)
		}
	}
	for _, want := range []string{
		"config.invalidate_secret=***",
		"config.redis_url=rediss://user:xxxxx@redis:6379/0",
		"config.upstream=https://origin.example:8443/api/v1",
		"config.default_ttl=45s",
		"config.stale_while_revalidate=1m30s",
		"config.max_object_bytes=524288",
		"config.refresh_workers=1024",
		"config.log_level=debug",
		"config.key_host=true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s:\n%s", want, out)
		}
	}
	if n := len(c.LogValue().Group()); n != len(Settings) {
		t.Errorf("LogValue has %d attributes, want one per setting (%d)", n, len(Settings))
	}

	c = mustLoad(t, map[string]string{"SWR_UPSTREAM": "http://o"})
	if got := attr(c, "invalidate_secret"); got != "" {
		t.Errorf("unset secret logs as %q, want empty", got)
	}
}

func attr(c Config, key string) string {
	for _, a := range c.LogValue().Group() {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return "(missing)"
}

// The admin password opens every private route through the login: a placeholder or a word a
// guesser tries first stops start-up, naming the setting but not the value.
func TestAPlaceholderAdminPasswordStopsStartUp(t *testing.T) {
	for _, v := range []string{"change-me-please", "password1234", "aaaaaaaaaaaa", "abcabcabcabc",
		"Secret-Admin-2026", "qwertyuiop12", "112211221122", "letmein-letmein", "short-pass",
		// The security review's list:
		"P@ssw0rd1234", "adminadmin12", "Admin123456!", "Welcome12345", "1q2w3e4r5t6y", "qazwsxedcrfv",
		"abcdefghijkl", "1234567890ab", "swrproxy1234", "iloveyou1234"} {
		_, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_ADMIN_PASSWORD": v}), nil)
		if err == nil {
			t.Errorf("SWR_ADMIN_PASSWORD=%q accepted", v)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "SWR_ADMIN_PASSWORD") || strings.Contains(msg, v) {
			t.Errorf("SWR_ADMIN_PASSWORD=%q: error %q must name the setting without echoing the value", v, msg)
		}
	}
	for _, v := range []string{"correct horse battery", "ZGk3vP0x+q1LmW9a", "Überwald-Ankh-Morpork"} {
		c, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_ADMIN_PASSWORD": v}), nil)
		if err != nil || c.AdminPassword != v {
			t.Errorf("SWR_ADMIN_PASSWORD=%q: %q, %v; want it accepted", v, c.AdminPassword, err)
		}
	}
}

// However a Redis password is written (user:password, a lone password, a password= query a
// go-redis URL form allows), neither the start-up log nor an error shows it.
func TestARedisPasswordNeverReachesALogOrAnError(t *testing.T) {
	for _, v := range []string{"redis://S3cretPw@redis:6379/0", "rediss://u:S3cretPw@redis:6379/0"} {
		c := mustLoad(t, map[string]string{"SWR_UPSTREAM": "http://o", "SWR_REDIS_URL": v})
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("starting", "config", c)
		if strings.Contains(buf.String(), "S3cretPw") {
			t.Errorf("%s: the log shows the password: %s", v, buf.String())
		}
	}
	for _, v := range []string{"redis://:sentinelpw@s:26379?password=S3cretPw", "redis://S3cretPw@h:6379?dial_timeout=S3cretPw",
		"rediss://S3cretPw@h1?addr=S3cretPw@h2", "redis://swr:12?S3cretPw@redis:6379/0"} {
		_, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://o", "SWR_REDIS_URL": v}), nil)
		if err == nil || strings.Contains(err.Error(), "S3cretPw") || strings.Contains(err.Error(), "sentinelpw") {
			t.Errorf("%s: %v, want an error without the password", v, err)
		}
	}
}
