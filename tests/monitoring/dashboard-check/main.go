// dashboard-check reads a Grafana dashboard JSON as Grafana's own schema describes it: the types
// of the Grafana Foundation SDK are generated from Grafana's dashboard schema and its panel and
// data source plugins' schemas, and their strict unmarshalling refuses unknown fields and fields
// of the wrong type (in the dashboard, its panels, their options and field config, and their
// Prometheus queries); Validate then checks the schema's required fields and constraints.
// tests/monitoring.rs runs it on deploy/components/monitoring/grafana-dashboard.json.
//
//	go run . DASHBOARD.json
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-check DASHBOARD.json")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// The panel (timeseries, stat, …) and data query (prometheus, …) schemas, so that panels'
	// options and targets are read strictly too rather than as free-form JSON.
	plugins.RegisterDefaultPlugins()
	var board dashboard.Dashboard
	if err := board.UnmarshalJSONStrict(raw); failed(err) {
		fmt.Fprintf(os.Stderr, "%s does not match Grafana's dashboard schema:\n%v\n", os.Args[1], err)
		os.Exit(1)
	}
	if err := board.Validate(); failed(err) {
		fmt.Fprintf(os.Stderr, "%s fails Grafana's dashboard schema's constraints:\n%v\n", os.Args[1], err)
		os.Exit(1)
	}
	fmt.Printf("%d panels\n", len(board.Panels))
}

// failed reports whether err holds an error. The SDK's strict unmarshalling returns its list of
// errors as an error even when the list is empty (a nil cog.BuildErrors in a non-nil interface).
func failed(err error) bool {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		return len(list) > 0
	}
	return err != nil
}
