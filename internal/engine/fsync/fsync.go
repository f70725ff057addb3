// Package fsync makes files and directories durable, with the cheapest
// call the system has for each.
package fsync

import "os"

// Dir makes a rename, creation or deletion of files in dir durable.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}
