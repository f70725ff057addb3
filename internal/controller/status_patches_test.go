package controller_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo and Gomega are DSLs, dot-imported as their docs do
	. "github.com/onsi/gomega"    //nolint:revive // as above
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
)

// statusPatches counts the status patches the reconcilers send, per
// object. A test reads it to prove that a pass which changed nothing sent
// nothing: the object cannot tell, since the API server keeps its
// resourceVersion when a patch changes nothing.
var statusPatches = &patchCounter{counts: map[string]int{}}

type patchCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func patchKey(obj client.Object) string {
	return fmt.Sprintf("%T %s", obj, client.ObjectKeyFromObject(obj))
}

func (p *patchCounter) add(obj client.Object) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[patchKey(obj)]++
}

// of is how many status patches were sent for obj.
func (p *patchCounter) of(obj client.Object) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[patchKey(obj)]
}

// countingStatusPatches wraps the manager's client c so that every status
// patch sent through it is counted in counter.
func countingStatusPatches(c client.Client, counter *patchCounter) client.Client {
	return interceptor.NewClient(withoutWatch{c}, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, subResource string, obj client.Object,
			patch client.Patch, opts ...client.SubResourcePatchOption,
		) error {
			if subResource == "status" {
				counter.add(obj)
			}
			return c.SubResource(subResource).Patch(ctx, obj, patch, opts...)
		},
	})
}

// withoutWatch makes the manager's client a client.WithWatch, which
// interceptor wraps; the reconcilers never call Watch.
type withoutWatch struct{ client.Client }

func (withoutWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("the manager's client does not watch")
}

// expectRefreshedNotChased ingests into stream, in namespace, every 2 ms
// for a status refresh and a bit, and checks that obj's status was patched
// at most once per refresh: its counters move all along, and a pass that
// reacted to its own status patch would patch again at once, for as long
// as they move.
func expectRefreshedNotChased(obj client.Object, namespace, stream string) {
	GinkgoHelper()
	before := statusPatches.of(obj)
	for end := time.Now().Add(controller.StatusRefresh + 2*time.Second); time.Now().Before(end); {
		ingestJSON(namespace, stream, "ItemCreated", `{"n":1}`)
		time.Sleep(2 * time.Millisecond) // quicker than a pass: each sees new counters
	}
	Expect(statusPatches.of(obj)-before).To(BeNumerically("<=", 3),
		"status patches of %T %s while events arrived for %s", obj, obj.GetName(), controller.StatusRefresh+2*time.Second)
}
