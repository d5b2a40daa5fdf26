package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// tempWriter returns a fresh temporary directory and a function that
// writes body to name in it (mode 0600) and returns the file's path.
func tempWriter(t *testing.T) (dir string, write func(name, body string) string) {
	dir = t.TempDir()
	return dir, func(name, body string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, body)
		return p
	}
}

// checkConfigLoader checks what every loader of an optional YAML file
// (--events-config, --cloud-config, --login-config) must do: no path is no
// configuration and no error; an absent file is an input error (exit
// status 2); so is each of bad (file name to content, written into dir),
// and its message names the file and never quotes secret (when not empty).
func checkConfigLoader[C any](t *testing.T, load func(string) (*C, error), dir string, bad map[string]string, secret string) {
	t.Helper()
	if c, err := load(""); c != nil || err != nil {
		t.Fatalf("no file: %v %v", c, err)
	}
	if _, err := load(filepath.Join(dir, "absent.yaml")); err == nil || exitCode(err) != 2 {
		t.Errorf("absent file: %v", err)
	}
	for name, body := range bad {
		p := filepath.Join(dir, name)
		writeFile(t, p, body)
		_, err := load(p)
		if err == nil || !strings.Contains(err.Error(), p) || exitCode(err) != 2 ||
			secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v (want an input error naming the file, without %q)", name, err, secret)
		}
	}
}
