package gateway

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// OpenAPI 3.1 document types: only what the route table fills in.
type (
	// Document is an OpenAPI 3.1 document.
	Document struct {
		OpenAPI    string                          `json:"openapi"`
		Info       Info                            `json:"info"`
		Tags       []Tag                           `json:"tags"`
		Paths      map[string]map[string]Operation `json:"paths"`
		Components Components                      `json:"components"`
	}
	Info struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	}
	Tag struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
	}
	// Operation carries its route's audience twice: as a security
	// requirement, which tools understand, and as x-audience, which names
	// it.
	Operation struct {
		OperationID string                `json:"operationId"`
		Summary     string                `json:"summary"`
		Tags        []string              `json:"tags"`
		Audience    catalog.Audience      `json:"x-audience"`
		Security    []map[string][]string `json:"security"`
		Parameters  []Parameter           `json:"parameters,omitempty"`
		RequestBody *RequestBody          `json:"requestBody,omitempty"`
		Responses   map[string]Response   `json:"responses"`
	}
	Parameter struct {
		Name        string `json:"name"`
		In          string `json:"in"`
		Description string `json:"description,omitempty"`
		Required    bool   `json:"required"`
		Schema      Schema `json:"schema"`
	}
	RequestBody struct {
		Required bool                 `json:"required"`
		Content  map[string]MediaType `json:"content"`
	}
	MediaType struct {
		Schema Schema `json:"schema"`
	}
	Response struct {
		Ref         string               `json:"$ref,omitempty"`
		Description string               `json:"description,omitempty"`
		Content     map[string]MediaType `json:"content,omitempty"`
	}
	Schema struct {
		Ref         string            `json:"$ref,omitempty"`
		Type        string            `json:"type,omitempty"`
		Enum        []string          `json:"enum,omitempty"`
		Required    []string          `json:"required,omitempty"`
		Properties  map[string]Schema `json:"properties,omitempty"`
		Items       *Schema           `json:"items,omitempty"`
		Description string            `json:"description,omitempty"`
	}
	Components struct {
		SecuritySchemes map[string]SecurityScheme `json:"securitySchemes"`
		Schemas         map[string]Schema         `json:"schemas"`
		Responses       map[string]Response       `json:"responses"`
	}
	SecurityScheme struct {
		Type         string `json:"type"`
		Scheme       string `json:"scheme"`
		BearerFormat string `json:"bearerFormat"`
		Description  string `json:"description"`
	}
)

// BearerScheme names the security scheme of user tokens.
const BearerScheme = "bearer"

// Security is the security requirement of an audience: none for public,
// a bearer token for customer, a bearer token with the admin role for admin
// (OpenAPI 3.1 lets an http scheme list the roles it needs).
func Security(a catalog.Audience) []map[string][]string {
	switch a {
	case catalog.Customer:
		return []map[string][]string{{BearerScheme: {}}}
	case catalog.Admin:
		return []map[string][]string{{BearerScheme: {"admin"}}}
	}
	return []map[string][]string{}
}

// OpenAPI describes routes as an OpenAPI 3.1 document.
func OpenAPI(routes []catalog.Route) Document {
	d := Document{
		OpenAPI: "3.1.0",
		Info: Info{
			Title:   "Switchboard public API",
			Version: "1",
			Description: "Every route the gateway serves, generated from the route table of services/catalog. " +
				"Audiences: public routes need no token; customer routes need a valid bearer token and serve the caller's own resources " +
				"only (another user's answers 404); admin routes need a token with the admin role (others get 403). " +
				"Any other method and path answers 404 unknown_route.",
		},
		Paths: map[string]map[string]Operation{},
		Components: Components{
			SecuritySchemes: map[string]SecurityScheme{BearerScheme: {
				Type: "http", Scheme: "bearer", BearerFormat: "JWT",
				Description: "A user token from POST /api/user/login or POST /api/account/login.",
			}},
			Schemas: map[string]Schema{
				"Error": {Type: "object", Required: []string{"error"}, Properties: map[string]Schema{
					"error": {Type: "object", Required: []string{"code", "message"}, Properties: map[string]Schema{
						"code":    {Type: "string", Description: "Stable and machine-readable, such as unknown_route or invalid_argument."},
						"message": {Type: "string"},
						"field":   {Type: "string", Description: "The request field at fault, when there is one."},
					}},
				}},
				"Health": {Type: "object", Required: []string{"status"}, Properties: map[string]Schema{
					"status":   {Type: "string", Enum: []string{StatusOK, StatusDegraded}},
					"degraded": {Type: "array", Items: &Schema{Type: "string"}, Description: "The services that are not ready."},
				}},
			},
			Responses: map[string]Response{},
		},
	}
	for code, what := range errorResponses {
		d.Components.Responses[strconv.Itoa(code)] = Response{Description: what, Content: jsonOf(Schema{Ref: "#/components/schemas/Error"})}
	}
	tagged := map[string]bool{}
	for _, rt := range routes {
		if !tagged[rt.Service] {
			tagged[rt.Service] = true
			d.Tags = append(d.Tags, Tag{Name: rt.Service, Description: tagDescription(rt.Service)})
		}
		if d.Paths[rt.Path] == nil {
			d.Paths[rt.Path] = map[string]Operation{}
		}
		d.Paths[rt.Path][strings.ToLower(rt.Method)] = operation(rt)
	}
	return d
}

func tagDescription(service string) string {
	if service == catalog.Gateway {
		return "The gateway's own routes."
	}
	return "Served by the " + service + " service."
}

// errorResponses are the error answers an operation may give, each a JSON
// Error.
var errorResponses = map[int]string{
	http.StatusBadRequest:            "The request is malformed; error.field names what is wrong.",
	http.StatusUnauthorized:          "No bearer token, or one that is invalid, expired or revoked.",
	http.StatusForbidden:             "The token lacks the admin role.",
	http.StatusNotFound:              "No such resource, or not the caller's own.",
	http.StatusRequestEntityTooLarge: "The body is over 1 MiB.",
	http.StatusTooManyRequests:       "The caller's rate limit is spent; Retry-After says when to come back.",
	http.StatusServiceUnavailable:    "The service behind the route is unavailable.",
}

func jsonOf(s Schema) map[string]MediaType {
	return map[string]MediaType{"application/json": {Schema: s}}
}

func operation(rt catalog.Route) Operation {
	op := Operation{
		OperationID: rt.OperationID(),
		Summary:     rt.Summary,
		Tags:        []string{rt.Service},
		Audience:    rt.Audience,
		Security:    Security(rt.Audience),
		Responses:   map[string]Response{},
	}
	for _, name := range rt.PathParams() {
		op.Parameters = append(op.Parameters, Parameter{Name: name, In: "path", Required: true, Schema: Schema{Type: "string"}})
	}
	for _, q := range rt.Query {
		op.Parameters = append(op.Parameters, Parameter{Name: q.Name, In: "query", Description: q.Description, Required: q.Required, Schema: Schema{Type: "string"}})
	}
	for _, h := range rt.Headers {
		op.Parameters = append(op.Parameters, Parameter{Name: h.Name, In: "header", Description: h.Description, Required: h.Required, Schema: Schema{Type: "string"}})
	}
	if rt.Body {
		op.RequestBody = &RequestBody{Required: true, Content: jsonOf(Schema{Type: "object"})}
	}

	ok := Response{Description: http.StatusText(rt.Status)}
	switch {
	case rt.Status == http.StatusNoContent:
	case rt.EventStream:
		ok.Content = map[string]MediaType{"text/event-stream": {Schema: Schema{Type: "string"}}}
	case len(rt.Media) > 0:
		ok.Content = map[string]MediaType{}
		for _, m := range rt.Media {
			ok.Content[m] = MediaType{Schema: Schema{Type: "string"}}
		}
	case rt.Path == "/health":
		ok.Content = jsonOf(Schema{Ref: "#/components/schemas/Health"})
	default:
		ok.Content = jsonOf(Schema{Type: "object"})
	}
	op.Responses[strconv.Itoa(rt.Status)] = ok

	errs := []int{http.StatusTooManyRequests}
	if rt.Body || len(rt.Query) > 0 || len(rt.Headers) > 0 {
		errs = append(errs, http.StatusBadRequest)
	}
	if rt.Body {
		errs = append(errs, http.StatusRequestEntityTooLarge)
	}
	if rt.Audience != catalog.Public {
		errs = append(errs, http.StatusUnauthorized)
	}
	if rt.Audience == catalog.Admin {
		errs = append(errs, http.StatusForbidden)
	}
	if len(rt.PathParams()) > 0 || rt.Audience == catalog.Customer {
		errs = append(errs, http.StatusNotFound)
	}
	if !rt.Own() {
		errs = append(errs, http.StatusServiceUnavailable)
	}
	for _, code := range errs {
		op.Responses[strconv.Itoa(code)] = Response{Ref: "#/components/responses/" + strconv.Itoa(code)}
	}
	if rt.Path == "/health" {
		op.Responses["503"] = Response{Description: "Degraded: some services are not ready.", Content: jsonOf(Schema{Ref: "#/components/schemas/Health"})}
	}
	return op
}
