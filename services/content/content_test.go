package content_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/account"
	"github.com/switchboard-dev/switchboard/services/content"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/streaming/streamtest"
)

type env struct {
	accounts, videos streamtest.Client
	// staff is videos with an admin's token: adding titles is theirs.
	staff streamtest.Client
	base  map[string]string
}

// env returns the content service's environment with extra settings.
func (e env) env(extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range e.base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func start(t *testing.T, extra map[string]string) env {
	t.Helper()
	b := kittest.StartNATS(t, "")
	e := b.Env()
	e["BCRYPT_COST"] = "4"
	e["SEED_DEMO"] = "false"
	e["UPSTREAM_ATTEMPTS"] = "1"
	acc := kittest.Serve(t, account.Definition, e)
	e["ACCOUNT_URL"] = acc.URL
	for k, v := range extra {
		e[k] = v
	}
	c := kittest.Serve(t, content.Definition, e)
	videos := streamtest.Client{T: t, Base: c.URL}
	return env{accounts: streamtest.Client{T: t, Base: acc.URL}, videos: videos,
		staff: videos.As(kittest.StaffToken(t, "staff1")), base: e}
}

func signUp(t *testing.T, c streamtest.Client, email, plan string) (string, string) {
	t.Helper()
	var a events.Account
	c.Must(http.StatusCreated, "POST", "/accounts", account.SignUp{Email: email, Password: "correct-horse", Plan: plan}, &a)
	var tok account.Token
	c.Must(http.StatusOK, "POST", "/login", account.Login{Email: email, Password: "correct-horse"}, &tok)
	return a.ID, tok.Token
}

func waitReady(t *testing.T, c streamtest.Client, id string) events.Video {
	t.Helper()
	var v events.Video
	kittest.Eventually(t, 10*time.Second, "video "+id+" ready", func() bool {
		c.Must(http.StatusOK, "GET", "/videos/"+id, nil, &v)
		return v.Status == content.Ready
	})
	return v
}

func TestUploadEncodesThroughThePipeline(t *testing.T) {
	e := start(t, nil)
	var v events.Video
	e.staff.Must(http.StatusCreated, "POST", "/videos", content.Upload{
		Title: "Night Train", Genres: []string{"drama"}, DurationSec: 1200, Regions: []string{"eu"}, MinPlan: events.PlanBasic, SourceHeight: 1080,
	}, &v)
	if v.Status != content.Encoding || len(v.Renditions) != 0 {
		t.Fatalf("upload answered %+v, want encoding without renditions", v)
	}
	v = waitReady(t, e.videos, v.ID)
	var got []string
	for _, r := range v.Renditions {
		got = append(got, r.Quality)
	}
	if want := []string{"240p", "360p", "480p", "720p", "1080p"}; !equal(got, want) {
		t.Fatalf("renditions %v, want %v (capped by the 1080p source)", got, want)
	}

	var list struct{ Items []events.Video }
	e.videos.Must(http.StatusOK, "GET", "/videos?genre=drama", nil, &list)
	if len(list.Items) != 1 || list.Items[0].ID != v.ID {
		t.Fatalf("genre filter: %+v", list.Items)
	}
	e.videos.Must(http.StatusOK, "GET", "/videos?genre=comedy", nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("comedy: %+v", list.Items)
	}
}

func TestAccess(t *testing.T) {
	e := start(t, nil)
	basicID, basicTok := signUp(t, e.accounts, "basic@example.com", events.PlanBasic)
	premID, premTok := signUp(t, e.accounts, "prem@example.com", events.PlanPremium)
	var v events.Video
	e.staff.Must(http.StatusCreated, "POST", "/videos", content.Upload{
		Title: "Deep Sea", Genres: []string{"nature"}, DurationSec: 600, Regions: []string{"eu", "us"}, MinPlan: events.PlanStandard,
	}, &v)
	waitReady(t, e.videos, v.ID)

	tests := []struct {
		name            string
		token, acct, rg string
		allowed         bool
		reason          string
	}{
		{"a premium viewer in the EU may watch", premTok, premID, "eu", true, "ok"},
		{"a region outside the video's list is refused", premTok, premID, "apac", false, "video is not available in region apac"},
		{"a plan below minPlan is refused", basicTok, basicID, "eu", false, "plan basic does not include this video: it needs standard or better"},
		{"someone else's account is refused", basicTok, premID, "eu", false, "account is unknown or not yours"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a content.Access
			e.videos.As(tt.token).Must(http.StatusOK, "GET", "/videos/"+v.ID+"/access?"+url.Values{"accountId": {tt.acct}, "region": {tt.rg}}.Encode(), nil, &a)
			if a.Allowed != tt.allowed || a.Reason != tt.reason {
				t.Fatalf("access %+v, want allowed=%v reason %q", a, tt.allowed, tt.reason)
			}
		})
	}

	raw := e.videos.As(premTok).Must(http.StatusBadRequest, "GET", "/videos/"+v.ID+"/access?region=eu", nil, nil)
	if streamtest.Err(t, raw).Error.Field != "accountId" {
		t.Fatalf("missing accountId: %s", raw)
	}
	e.videos.As(premTok).Must(http.StatusNotFound, "GET", "/videos/nope/access?accountId="+premID+"&region=eu", nil, nil)

	// With account unreachable, the check fails fast with a 503 rather
	// than guess. (A second replica on the same broker sees the same video.)
	down := kittest.Serve(t, content.Definition, e.env(map[string]string{"ACCOUNT_URL": "http://127.0.0.1:1"}))
	raw = streamtest.Client{T: t, Base: down.URL, Token: premTok}.Must(http.StatusServiceUnavailable, "GET", "/videos/"+v.ID+"/access?accountId="+premID+"&region=eu", nil, nil)
	if streamtest.Err(t, raw).Error.Code != kit.CodeUnavailable {
		t.Fatalf("account down: %s", raw)
	}
}

func TestAccessWhileEncoding(t *testing.T) {
	e := start(t, map[string]string{"ENCODE_TIME": "1h"})
	id, tok := signUp(t, e.accounts, "early@example.com", events.PlanPremium)
	var v events.Video
	e.staff.Must(http.StatusCreated, "POST", "/videos", content.Upload{
		Title: "Soon", Genres: []string{"drama"}, DurationSec: 60, Regions: []string{"eu"}, MinPlan: events.PlanBasic,
	}, &v)
	var a content.Access
	e.videos.As(tok).Must(http.StatusOK, "GET", "/videos/"+v.ID+"/access?accountId="+id+"&region=eu", nil, &a)
	if a.Allowed || a.Reason != "video is still encoding" {
		t.Fatalf("access while encoding: %+v", a)
	}
}

func TestUploadValidation(t *testing.T) {
	e := start(t, nil)
	good := content.Upload{Title: "T", Genres: []string{"drama"}, DurationSec: 60, Regions: []string{"eu"}, MinPlan: events.PlanBasic}
	tests := []struct {
		name  string
		edit  func(*content.Upload)
		field string
	}{
		{"an empty title", func(u *content.Upload) { u.Title = "" }, "title"},
		{"no genres", func(u *content.Upload) { u.Genres = nil }, "genres"},
		{"a genre with spaces", func(u *content.Upload) { u.Genres = []string{"sci fi"} }, "genres"},
		{"a zero duration", func(u *content.Upload) { u.DurationSec = 0 }, "durationSec"},
		{"no regions", func(u *content.Upload) { u.Regions = nil }, "regions"},
		{"an unknown plan", func(u *content.Upload) { u.MinPlan = "gold" }, "minPlan"},
		{"a tiny source", func(u *content.Upload) { u.SourceHeight = 100 }, "sourceHeight"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is a 400 naming the field", func(t *testing.T) {
			u := good
			tt.edit(&u)
			c := e.staff
			c.T = t
			raw := c.Must(http.StatusBadRequest, "POST", "/videos", u, nil)
			if f := streamtest.Err(t, raw).Error.Field; f != tt.field {
				t.Fatalf("field %q, want %q: %s", f, tt.field, raw)
			}
		})
	}
}

// Adding a title is for staff, checked by content itself.
func TestOnlyStaffAddTitles(t *testing.T) {
	e := start(t, nil)
	_, customer := signUp(t, e.accounts, "viewer@example.com", events.PlanPremium)
	up := content.Upload{Title: "Mine now", Genres: []string{"drama"}, DurationSec: 60, Regions: []string{"eu"}, MinPlan: events.PlanBasic}
	for _, tt := range []struct {
		name   string
		c      streamtest.Client
		status int
		code   string
	}{
		{"without a token", e.videos, http.StatusUnauthorized, kit.CodeUnauthenticated},
		{"as a customer", e.videos.As(customer), http.StatusForbidden, kit.CodeForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.T = t
			if raw := tt.c.Must(tt.status, "POST", "/videos", up, nil); streamtest.Err(t, raw).Error.Code != tt.code {
				t.Fatalf("%s, want %s", raw, tt.code)
			}
		})
	}
	var list struct{ Items []events.Video }
	e.videos.Must(http.StatusOK, "GET", "/videos", nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("refused uploads added %+v", list.Items)
	}
	e.staff.Must(http.StatusCreated, "POST", "/videos", up, nil)
}

func FuzzUploadDecode(f *testing.F) {
	f.Add([]byte(`{"title":"a","genres":["x"],"durationSec":1,"regions":["eu"],"minPlan":"basic"}`))
	f.Add([]byte(`{"genres":"x"}`))
	f.Add([]byte(`{"sourceHeight":-1,"durationSec":1e99}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var u content.Upload
		if err := kit.DecodeJSON(bytes.NewReader(body), &u); err != nil {
			if s := kit.AsError(err).Status; s != 400 && s != 413 {
				t.Fatalf("decode error %v is a %d", err, s)
			}
			return
		}
		if err := u.Validate(); err != nil {
			if e := kit.AsError(err); e.Status != 400 || e.Field == "" {
				t.Fatalf("validation error %v: status %d field %q", err, e.Status, e.Field)
			}
			return
		}
		if len(content.RenditionsFor(max(u.SourceHeight, content.DefaultSourceHeight))) == 0 {
			t.Fatal("a valid upload must have renditions")
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A replica that dies between storing a video and publishing its encode
// request leaves it "encoding" with no job anywhere; the resume sweep finds
// it and the pipeline finishes it.
func TestAStalledEncodingIsResumed(t *testing.T) {
	b := kittest.StartNATS(t, "")
	nc, err := nats.Connect(b.URL, nats.UserInfo(b.User, b.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "videos", History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	orphan := events.Video{ID: "orphan1", Title: "Lost Job", Genres: []string{"drama"}, DurationSec: 60, Regions: []string{"eu"},
		MinPlan: events.PlanBasic, SourceHeight: 720, Status: content.Encoding, Renditions: []events.Rendition{}, CreatedAt: time.Now().Add(-time.Hour)}
	raw, _ := json.Marshal(orphan)
	if _, err := kv.Put(ctx, orphan.ID, raw); err != nil {
		t.Fatal(err)
	}

	e := b.Env()
	e["BCRYPT_COST"], e["SEED_DEMO"], e["ENCODE_RESUME_AFTER"] = "4", "false", "200ms"
	acc := kittest.Serve(t, account.Definition, e)
	e["ACCOUNT_URL"] = acc.URL
	c := kittest.Serve(t, content.Definition, e)
	v := waitReady(t, streamtest.Client{T: t, Base: c.URL}, orphan.ID)
	if len(v.Renditions) == 0 || v.Renditions[len(v.Renditions)-1].Quality != "720p" {
		t.Errorf("resumed video has renditions %+v, want up to 720p", v.Renditions)
	}
}
