package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIPath serves the OpenAPI document of the API.
const openAPIPath = "/v1/openapi.json"

// openAPI is the OpenAPI 3.1 description of the routes under /v1/.
//
//go:embed openapi.json
var openAPI []byte

// serveOpenAPI answers the OpenAPI document to anyone: it describes the
// API, not what any namespace holds.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	writeRawJSON(w, http.StatusOK, openAPI)
}
