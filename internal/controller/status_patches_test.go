package controller_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
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
