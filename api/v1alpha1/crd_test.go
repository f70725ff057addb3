/*
Copyright 2026 The eventsourcing-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

var plurals = []string{"streams", "pipelines", "projections"}

func TestAddToSchemeRegistersEveryKind(t *testing.T) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Stream", "StreamList", "Pipeline", "PipelineList", "Projection", "ProjectionList"} {
		gvk := v1alpha1.GroupVersion.WithKind(kind)
		if !s.Recognizes(gvk) {
			t.Errorf("scheme does not recognize %s", gvk)
		}
	}
}

// TestCRDsPassTheAPIServersCRDValidation runs the checks the API server makes
// when the CRD is applied: a structural schema, CEL rules that compile and
// stay within the cost limits, defaults that are valid, fieldPaths that
// exist, printer columns that parse.
func TestCRDsPassTheAPIServersCRDValidation(t *testing.T) {
	for _, plural := range plurals {
		t.Run(plural, func(t *testing.T) {
			c := loadCRD(t, plural)
			if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), c.internal); len(errs) != 0 {
				t.Fatalf("the API server would refuse the CRD:\n%s", errorLines(errs))
			}
		})
	}
}

func TestCRDNamesSubresourcesAndPrinterColumns(t *testing.T) {
	type column struct{ name, jsonPath string }
	ready := column{"Ready", `.status.conditions[?(@.type=="Ready")].status`}
	reason := column{"Reason", `.status.conditions[?(@.type=="Ready")].reason`}
	age := column{"Age", ".metadata.creationTimestamp"}
	tests := []struct {
		plural, kind, shortName string
		columns                 []column
	}{
		{"streams", "Stream", "str", []column{
			ready, reason,
			{"Last Sequence", ".status.lastSequence"},
			{"Subscribers", ".status.subscribers"},
			{"Ingest Path", ".status.ingestPath"},
			age,
		}},
		{"pipelines", "Pipeline", "pipe", []column{ready, reason, age}},
		{"projections", "Projection", "proj", []column{
			ready, reason,
			{"Processed", ".status.eventsProcessed"},
			{"Dead Lettered", ".status.deadLettered"},
			{"Lag", ".status.lag"},
			{"Query Path", ".status.queryPath"},
			age,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.plural, func(t *testing.T) {
			spec := loadCRD(t, tt.plural).v1.Spec
			if spec.Group != v1alpha1.GroupVersion.Group {
				t.Errorf("group: got %q, want %q", spec.Group, v1alpha1.GroupVersion.Group)
			}
			if spec.Scope != apiextensionsv1.NamespaceScoped {
				t.Errorf("scope: got %q, want Namespaced", spec.Scope)
			}
			if spec.Names.Kind != tt.kind || spec.Names.Plural != tt.plural {
				t.Errorf("names: got kind %q plural %q, want %q %q", spec.Names.Kind, spec.Names.Plural, tt.kind, tt.plural)
			}
			if !slices.Equal(spec.Names.ShortNames, []string{tt.shortName}) {
				t.Errorf("short names: got %v, want [%s]", spec.Names.ShortNames, tt.shortName)
			}
			if !slices.Equal(spec.Names.Categories, []string{"eventsourcing"}) {
				t.Errorf("categories: got %v, want [eventsourcing]", spec.Names.Categories)
			}
			if len(spec.Versions) != 1 || spec.Versions[0].Name != v1alpha1.GroupVersion.Version {
				t.Fatalf("versions: got %d, want only %s", len(spec.Versions), v1alpha1.GroupVersion.Version)
			}
			version := spec.Versions[0]
			if !version.Served || !version.Storage {
				t.Errorf("version %s: served %v storage %v, want both", version.Name, version.Served, version.Storage)
			}
			if version.Subresources == nil || version.Subresources.Status == nil {
				t.Errorf("want the status subresource")
			}
			var got []column
			for _, c := range version.AdditionalPrinterColumns {
				got = append(got, column{c.Name, c.JSONPath})
			}
			if !slices.Equal(got, tt.columns) {
				t.Errorf("printer columns:\n got %v\nwant %v", got, tt.columns)
			}
		})
	}
}

// TestEveryFieldIsDescribed: the doc comments become the descriptions that
// kubectl explain shows, so every field needs one.
func TestEveryFieldIsDescribed(t *testing.T) {
	for _, plural := range plurals {
		t.Run(plural, func(t *testing.T) {
			root := loadCRD(t, plural).v1.Spec.Versions[0].Schema.OpenAPIV3Schema
			var missing []string
			var walk func(path string, s *apiextensionsv1.JSONSchemaProps)
			walk = func(path string, s *apiextensionsv1.JSONSchemaProps) {
				if strings.TrimSpace(s.Description) == "" && path != ".metadata" {
					missing = append(missing, path)
				}
				for name, p := range s.Properties {
					walk(path+"."+name, &p)
				}
				// Items of a list of structs carry the struct's description;
				// items of a list of scalars are described by the list.
				if s.Items != nil && s.Items.Schema != nil && len(s.Items.Schema.Properties) > 0 {
					walk(path+"[]", s.Items.Schema)
				}
			}
			walk("", root)
			if len(missing) != 0 {
				slices.Sort(missing)
				t.Errorf("fields without a description (add a doc comment):\n  %s", strings.Join(missing, "\n  "))
			}
		})
	}
}

// TestEveryCELRuleHasAMessage: without a message the API server answers with
// the rule's source text, which does not tell a user what to fix.
func TestEveryCELRuleHasAMessage(t *testing.T) {
	total := 0
	for _, plural := range plurals {
		root := loadCRD(t, plural).v1.Spec.Versions[0].Schema.OpenAPIV3Schema
		var walk func(path string, s *apiextensionsv1.JSONSchemaProps)
		walk = func(path string, s *apiextensionsv1.JSONSchemaProps) {
			for _, r := range s.XValidations {
				total++
				if strings.TrimSpace(r.Message) == "" && strings.TrimSpace(r.MessageExpression) == "" {
					t.Errorf("%s%s: rule %q has no message", plural, path, r.Rule)
				}
			}
			for name, p := range s.Properties {
				walk(path+"."+name, &p)
			}
			if s.Items != nil && s.Items.Schema != nil {
				walk(path+"[]", s.Items.Schema)
			}
		}
		walk("", root)
	}
	// Stream: 3 (avro, protobuf, own dead-letter stream) and 2 for
	// retention (a bound, maxAge); Pipeline: 7 per entry, 1 for retry
	// backoffs and 4 durations; Projection: 1 (key) and 2 (reduce with
	// Reduce and only then).
	if want := 3 + 2 + 7 + 1 + 4 + 1 + 2; total != want {
		t.Errorf("found %d CEL rules, want %d: a rule was lost or added without a test", total, want)
	}
}
