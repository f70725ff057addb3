package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

// walkthrough is the copy-paste tour printed once the manager is ready; the
// README's Quick start holds it verbatim for the default flags (a test
// checks), and the e2e suite runs it. local adds the exports that point
// kubectl at the local control plane.
func walkthrough(o options, local bool) string {
	api := "http://" + o.ingestAddr + "/v1/namespaces/default"
	var b strings.Builder
	b.WriteString("\nThe manager is ready. In another terminal, in this directory:\n\n")
	if local {
		fmt.Fprintf(&b, "export KUBECONFIG=%s\n", shellPath(filepath.Join(o.stateDir, "kubeconfig")))
		fmt.Fprintf(&b, "export PATH=%s:\"$PATH\"   # the kubectl built with the control plane\n", shellPath(o.k8sDir))
	}
	b.WriteString("kubectl apply -k config/samples\n")
	b.WriteString("kubectl wait --for=condition=Ready --timeout=60s streams/items-events projections/items\n")
	for _, p := range []struct{ contentType, file string }{
		{"application/json", "item.json"},
		{"application/avro", "item.avro"},
		{"application/x-protobuf", "item.pb"},
	} {
		fmt.Fprintf(&b, "curl -sS -H 'Content-Type: %s' --data-binary @config/samples/payloads/%s \\\n  %s/streams/items-events/events\n",
			p.contentType, p.file, api)
	}
	fmt.Fprintf(&b, "curl -sS %s/projections/items\n", api)
	b.WriteString("# {\"items\":[{\"foo\":\"a\",\"n\":1},{\"foo\":\"b\",\"n\":2},{\"foo\":\"c\",\"n\":3}]}\n")
	b.WriteString("kubectl get streams,projections   # counters refresh within 5 seconds\n")
	fmt.Fprintf(&b, "\nThe web console: http://%s/console/?namespace=default\n", o.ingestAddr)
	fmt.Fprintf(&b, "The manager's log: tail -f %s\n", o.managerLog)
	stops := []string{"the manager"}
	if o.localNATSURL != "" {
		fmt.Fprintf(&b, "The manager stores events in NATS JetStream at %s, a server make run started: "+
			"its files in %s (emptied at each start), its log %s.\n",
			o.localNATSURL, o.natsDir(), o.natsLog())
		stops = append(stops, "the NATS server")
	}
	if local {
		stops = append(stops, "the local control plane (its objects go with it)")
	}
	fmt.Fprintf(&b, "Ctrl-C here stops %s.\n", andList(stops))
	return b.String()
}

// andList joins items as a sentence does: "a", "a and b", "a, b and c".
func andList(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// shellPath quotes p for the shell, relative paths from $PWD so the line
// still works when pasted elsewhere in the shell's history.
func shellPath(p string) string {
	if filepath.IsAbs(p) {
		return `"` + p + `"`
	}
	return `"$PWD/` + filepath.ToSlash(p) + `"`
}
