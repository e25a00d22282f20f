package chaos

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// MaxShown bounds the violations printed per invariant.
const MaxShown = 15

// Print writes the full report of a run: the seed, the schedule as it
// happened, and the tables.
func (r *Result) Print(w io.Writer, pending []string) {
	fmt.Fprintf(w, "seed %d: %d orders, %d faults; load %s, quiescence %s (%s), total %s\n", r.Seed, r.Orders, r.Faults,
		r.LoadTook.Round(time.Millisecond), r.QuietTook.Round(time.Millisecond), quietWord(r.Quiet), r.Took.Round(time.Millisecond))
	fmt.Fprintln(w, "\nschedule (time since the load began, kind, pod, after order #):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range r.Schedule {
		fmt.Fprintf(tw, "  +%s\t%s\t%s\t#%d\t%s\n", f.At.Round(time.Millisecond), f.Kind, f.Target, f.AfterOrders, f.Note)
	}
	tw.Flush()

	fmt.Fprintln(w, "\norders by final state:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, k := range slices.Sorted(maps.Keys(r.ByState)) {
		fmt.Fprintf(tw, "  %s\t%d\t\n", k, r.ByState[k])
	}
	tw.Flush()
	fmt.Fprintln(w, "\nwhat clients were last told (HTTP status, order status or error code):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, k := range slices.Sorted(maps.Keys(r.Answers)) {
		fmt.Fprintf(tw, "  %s\t%d\t\n", k, r.Answers[k])
	}
	tw.Flush()
	fmt.Fprintln(w, "\nfaults by kind:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, k := range FaultKinds {
		fmt.Fprintf(tw, "  %s\t%d\t\n", k, r.FaultsByKind[k])
	}
	tw.Flush()

	if len(r.Spread) > 0 {
		fmt.Fprintln(w, "\nconnections per replica, through each replicated Service port:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, name := range slices.Sorted(maps.Keys(r.Spread)) {
			var per []string
			for _, pod := range slices.Sorted(maps.Keys(r.Spread[name])) {
				per = append(per, fmt.Sprintf("%s %d", pod, r.Spread[name][pod]))
			}
			fmt.Fprintf(tw, "  %s\t%s\t\n", name, strings.Join(per, ", "))
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\ninvariants:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  invariant\tchecked\tviolations\t")
	for _, c := range r.Checks {
		v := fmt.Sprint(len(c.Violations))
		switch {
		case c.NotCheckable != "":
			v = "not checkable on this code: " + c.NotCheckable
		case len(c.Violations) > 0 && contains(pending, c.Name):
			v += " (pending: a known defect)"
		case c.Note != "":
			v += " (" + c.Note + ")"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t\n", c.Name, c.Checked, v)
	}
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	if len(r.Consumers) > 0 {
		fmt.Fprintln(w, "\nconsumers when the checks read the stores:")
		for _, d := range slices.Sorted(maps.Keys(r.Consumers)) {
			fmt.Fprintf(w, "  %s: %s\n", d, r.Consumers[d])
		}
	}
	for _, c := range r.Checks {
		if len(c.Violations) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: %d violations\n", c.Name, len(c.Violations))
		for _, v := range head(c.Violations, MaxShown) {
			fmt.Fprintln(w, "  "+v)
		}
		if len(c.Offenders) > 0 && r.Evidence[c.Offenders[0]] != "" {
			fmt.Fprintf(w, "  the stores on %s:\n", c.Offenders[0])
			for _, l := range strings.Split(strings.TrimRight(r.Evidence[c.Offenders[0]], "\n"), "\n") {
				fmt.Fprintln(w, "    "+l)
			}
		}
	}
	if r.Dir != "" {
		fmt.Fprintln(w, "\npods' logs and stores kept in", r.Dir)
	}
}

// Summary is one line for the run.
func (r *Result) Summary(pending []string) string {
	verdict := "PASS"
	if len(r.Failing(pending)) > 0 {
		verdict = "FAIL"
	}
	var states, kinds, bad []string
	for _, k := range slices.Sorted(maps.Keys(r.ByState)) {
		states = append(states, fmt.Sprintf("%s %d", k, r.ByState[k]))
	}
	for _, k := range FaultKinds {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, r.FaultsByKind[k]))
	}
	for _, c := range r.Checks {
		if len(c.Violations) > 0 {
			bad = append(bad, fmt.Sprintf("%s=%d", c.Name, len(c.Violations)))
		}
	}
	line := fmt.Sprintf("seed %d: %s orders=%d (%s) faults=%d (%s) quiet=%s/%s took=%s",
		r.Seed, verdict, r.Orders, strings.Join(states, ", "), len(r.Schedule), strings.Join(kinds, ", "),
		quietWord(r.Quiet), r.QuietTook.Round(100*time.Millisecond), r.Took.Round(time.Second))
	if len(bad) > 0 {
		line += " violations: " + strings.Join(bad, " ")
	}
	return line
}

func quietWord(ok bool) string {
	if ok {
		return "quiet"
	}
	return "NOT quiet"
}
