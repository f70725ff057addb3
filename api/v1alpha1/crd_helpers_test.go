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
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	celvalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// These tests check the generated CRDs in config/crd/bases without an API
// server: each CRD goes through the API server's own CRD validation (schema
// structure, CEL compilation and cost limits, defaults, printer columns), and
// each example object goes through the steps the API server takes on create
// (prune unknown fields, default, OpenAPI schema, list types, CEL rules),
// using the API server's code for each step. envtest covers the real server.

// crd is one generated CRD, ready to admit objects as the API server would.
type crd struct {
	v1         *apiextensionsv1.CustomResourceDefinition
	internal   *apiextensions.CustomResourceDefinition
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *celvalidation.Validator
}

// loadCRD reads config/crd/bases/eventsourcing.dev_<plural>.yaml.
func loadCRD(t *testing.T, plural string) *crd {
	t.Helper()
	path := filepath.Join("..", "..", "config", "crd", "bases", "eventsourcing.dev_"+plural+".yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read generated CRD (run make manifests): %v", err)
	}
	v1 := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(raw, v1); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}

	scheme := runtime.NewScheme()
	apiextensionsinstall.Install(scheme)
	defaulted := v1.DeepCopy()
	scheme.Default(defaulted)
	internal := &apiextensions.CustomResourceDefinition{}
	if err := scheme.Convert(defaulted, internal, nil); err != nil {
		t.Fatalf("convert %s to the internal version: %v", path, err)
	}
	// The schema as the API server's handler takes it for serving objects.
	if len(v1.Spec.Versions) != 1 || v1.Spec.Versions[0].Schema == nil {
		t.Fatalf("%s: want one version with a schema, got %d versions", path, len(v1.Spec.Versions))
	}
	validation := &apiextensions.CustomResourceValidation{}
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(
		v1.Spec.Versions[0].Schema, validation, nil); err != nil {
		t.Fatalf("%s: convert the schema to the internal version: %v", path, err)
	}
	props := validation.OpenAPIV3Schema

	s, err := structuralschema.NewStructural(props)
	if err != nil {
		t.Fatalf("%s: schema is not structural: %v", path, err)
	}
	s = s.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(s); err != nil {
		t.Fatalf("%s: prune defaults: %v", path, err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(props)
	if err != nil {
		t.Fatalf("%s: schema validator: %v", path, err)
	}
	return &crd{
		v1:         v1,
		internal:   internal,
		structural: s,
		schema:     validator,
		cel:        celvalidation.NewValidator(s, true, celconfig.PerCallLimit),
	}
}

// admit parses a manifest and takes it through the API server's create
// path: unknown fields are errors (kubectl's strict field validation),
// defaults are applied, then the OpenAPI schema, list types and, unless an
// earlier error blocks them as the API server does, the CEL rules are checked.
// It returns the defaulted object and every error.
func (c *crd) admit(t *testing.T, manifest string) (map[string]any, field.ErrorList) {
	t.Helper()
	raw, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatalf("manifest is not YAML: %v\n%s", err, manifest)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("manifest is not an object: %v", err)
	}

	var errs field.ErrorList
	trackUnknown := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
	unknown := structuralpruning.PruneWithOptions(obj, c.structural, true, trackUnknown)
	for _, p := range unknown {
		errs = append(errs, field.Invalid(field.NewPath(p), nil, "unknown field"))
	}
	structuraldefaulting.Default(obj, c.structural)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, c.schema)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, c.structural, obj)...)
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return obj, append(errs, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid"))
		}
	}
	celErrs, _ := c.cel.Validate(context.Background(), nil, c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return obj, append(errs, celErrs...)
}

// wantError is one error that admit must report: the field it is on and a
// part of its text.
type wantError struct {
	field string
	text  string
}

// admitCase is one manifest and the errors it must produce (none when
// wantErrors is empty).
type admitCase struct {
	name       string
	manifest   string
	wantErrors []wantError
}

func runAdmitCases(t *testing.T, c *crd, cases []admitCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := c.admit(t, tc.manifest)
			if len(tc.wantErrors) == 0 {
				if len(errs) != 0 {
					t.Fatalf("got errors, want none:\n%s", errorLines(errs))
				}
				return
			}
			for _, want := range tc.wantErrors {
				found := slices.ContainsFunc(errs, func(e *field.Error) bool {
					return e.Field == want.field && strings.Contains(e.Error(), want.text)
				})
				if !found {
					t.Errorf("want an error on %s containing %q, got:\n%s", want.field, want.text, errorLines(errs))
				}
			}
		})
	}
}

func errorLines(errs field.ErrorList) string {
	if len(errs) == 0 {
		return "  (no errors)"
	}
	lines := make([]string, 0, len(errs))
	for _, e := range errs {
		lines = append(lines, "  "+e.Error())
	}
	return strings.Join(lines, "\n")
}

// decodeStrict turns an admitted (defaulted) object into its Go type,
// refusing fields the Go type does not have, so the schema and the Go json
// tags cannot drift apart.
func decodeStrict(t *testing.T, obj map[string]any, into any) {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("decode the admitted object into %T: %v\n%s", into, err, raw)
	}
}

// toManifest renders a Go object as the JSON (a YAML subset) a client sends.
func toManifest(t *testing.T, obj any) string {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// docExample returns the first YAML example of kind in docs/<page>, its
// status left out, so that the reference cannot show an object the API
// server would refuse.
func docExample(t *testing.T, page, kind string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	const open, closing = "```yaml\n", "```"
	rest := string(text)
	for {
		_, block, found := strings.Cut(rest, open)
		if !found {
			t.Fatalf("docs/%s has no YAML example of kind %s", page, kind)
		}
		block, rest, _ = strings.Cut(block, closing)
		if strings.Contains(block, "\nkind: "+kind+"\n") {
			manifest, _, _ := strings.Cut(block, "\nstatus:\n")
			return manifest
		}
	}
}
