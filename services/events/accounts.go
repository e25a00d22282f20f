package events

import "github.com/switchboard-dev/switchboard/services/catalog"

// Profile is one viewer of a streaming account.
type Profile struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Account is a streaming account as the account service answers it and
// account.created carries it.
type Account struct {
	ID       string    `json:"id"`
	Email    string    `json:"email"`
	Plan     string    `json:"plan"`
	Profiles []Profile `json:"profiles"`
}

// AccountCreated is the data of account.created.
type AccountCreated struct{ Account }

// AccountPlanChanged is the data of account.plan_changed.
type AccountPlanChanged struct {
	AccountID string `json:"accountId"`
	From      string `json:"from"`
	To        string `json:"to"`
}

func (AccountCreated) EventType() string     { return catalog.AccountCreated }
func (AccountPlanChanged) EventType() string { return catalog.AccountPlanChanged }

// Plan is what a subscription allows. Account events name plans; account
// sells them, content admits by them and playback limits by them, so the
// table is part of the contract the three share.
type Plan struct {
	Name string `json:"name"`
	// Streams is the number of concurrent playback sessions.
	Streams int `json:"streams"`
	// MaxHeight caps playback quality (720 means 720p).
	MaxHeight int `json:"maxHeight"`
	// Rank orders plans: a video's minPlan admits plans of equal or higher rank.
	Rank int `json:"rank"`
}

// Plan names.
const (
	PlanBasic    = "basic"
	PlanStandard = "standard"
	PlanPremium  = "premium"
)

var plans = []Plan{
	{Name: PlanBasic, Streams: 1, MaxHeight: 720, Rank: 0},
	{Name: PlanStandard, Streams: 2, MaxHeight: 1080, Rank: 1},
	{Name: PlanPremium, Streams: 4, MaxHeight: 2160, Rank: 2},
}

// LookupPlan returns the named plan.
func LookupPlan(name string) (Plan, bool) {
	for _, p := range plans {
		if p.Name == name {
			return p, true
		}
	}
	return Plan{}, false
}

// PlanNames lists the plans from cheapest to richest.
func PlanNames() []string {
	out := make([]string, len(plans))
	for i, p := range plans {
		out[i] = p.Name
	}
	return out
}
