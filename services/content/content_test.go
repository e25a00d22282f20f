package content_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	contentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/content/v1"

	"github.com/switchboard-dev/switchboard/services/account"
	"github.com/switchboard-dev/switchboard/services/catalog"
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
	// asPlayback calls content's gRPC API as playback does.
	asPlayback contentv1.LibraryClient
	base       map[string]string
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
	e[catalog.EnvGRPC("account")] = acc.GRPCAddr
	for k, v := range extra {
		e[k] = v
	}
	c := kittest.Serve(t, content.Definition, e)
	videos := streamtest.Client{T: t, Base: c.URL}
	return env{accounts: streamtest.Client{T: t, Base: acc.URL}, videos: videos,
		staff: videos.As(kittest.StaffToken(t, "staff1")), base: e,
		asPlayback: contentv1.NewLibraryClient(kittest.Platform(t).GRPCClient(t, "playback", "content", c.GRPCAddr))}
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

// Playback asks content whether a viewer may watch a title (over gRPC,
// for the viewer its token names): ready, offered in the region, and the
// account's plan, read from account over gRPC, ranking the title's
// minimum plan.
func TestAccess(t *testing.T) {
	e := start(t, nil)
	basicID, _ := signUp(t, e.accounts, "basic@example.com", events.PlanBasic)
	premID, _ := signUp(t, e.accounts, "prem@example.com", events.PlanPremium)
	var v events.Video
	e.staff.Must(http.StatusCreated, "POST", "/videos", content.Upload{
		Title: "Deep Sea", Genres: []string{"nature"}, DurationSec: 600, Regions: []string{"eu", "us"}, MinPlan: events.PlanStandard,
	}, &v)
	waitReady(t, e.videos, v.ID)
	ctx := context.Background()

	tests := []struct {
		name     string
		acct, rg string
		allowed  bool
		reason   string
	}{
		{"a premium viewer in the EU may watch", premID, "eu", true, "ok"},
		{"a region outside the video's list is refused", premID, "apac", false, "video is not available in region apac"},
		{"a plan below minPlan is refused", basicID, "eu", false, "plan basic does not include this video: it needs standard or better"},
		{"an unknown account is refused", "nobody", "eu", false, "account is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := e.asPlayback.CheckAccess(ctx, &contentv1.CheckAccessRequest{VideoId: v.ID, AccountId: tt.acct, Region: tt.rg})
			if err != nil || a.GetAllowed() != tt.allowed || a.GetReason() != tt.reason || a.GetVideo().GetId() != v.ID {
				t.Fatalf("access %v (%v), want allowed=%v reason %q with the video", a, err, tt.allowed, tt.reason)
			}
		})
	}
	got, err := e.asPlayback.GetVideo(ctx, &contentv1.GetVideoRequest{VideoId: v.ID})
	if err != nil || got.GetVideo().GetStatus() != contentv1.VideoStatus_VIDEO_STATUS_READY || len(got.GetVideo().GetRenditions()) == 0 {
		t.Fatalf("GetVideo: %v %v", got, err)
	}

	refusals := []struct {
		name          string
		req           *contentv1.CheckAccessRequest
		code          codes.Code
		reason, field string
	}{
		{"no account", &contentv1.CheckAccessRequest{VideoId: v.ID, Region: "eu"}, codes.InvalidArgument, kit.CodeInvalid, "account_id"},
		{"no region", &contentv1.CheckAccessRequest{VideoId: v.ID, AccountId: premID}, codes.InvalidArgument, kit.CodeInvalid, "region"},
		{"an unknown video", &contentv1.CheckAccessRequest{VideoId: "nope", AccountId: premID, Region: "eu"}, codes.NotFound, content.CodeUnknownVideo, "video_id"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.asPlayback.CheckAccess(ctx, tt.req)
			if e := kit.AsError(err); status.Code(err) != tt.code || e.Code != tt.reason || e.Field != tt.field {
				t.Fatalf("%v, want %s %s naming %s", err, tt.code, tt.reason, tt.field)
			}
		})
	}
	// Over REST the access check no longer exists.
	e.videos.Must(http.StatusNotFound, "GET", "/videos/"+v.ID+"/access?accountId="+premID+"&region=eu", nil, nil)

	// With account unreachable, the check fails with UNAVAILABLE rather
	// than guess. (A second replica on the same broker sees the same video.)
	down := kittest.Serve(t, content.Definition, e.env(map[string]string{catalog.EnvGRPC("account"): "127.0.0.1:1"}))
	asPlayback := contentv1.NewLibraryClient(kittest.Platform(t).GRPCClient(t, "playback", "content", down.GRPCAddr))
	_, err = asPlayback.CheckAccess(ctx, &contentv1.CheckAccessRequest{VideoId: v.ID, AccountId: premID, Region: "eu"})
	if status.Code(err) != codes.Unavailable || kit.AsError(err).Code != kit.CodeUnavailable {
		t.Fatalf("account down: %v", err)
	}
}

func TestAccessWhileEncoding(t *testing.T) {
	e := start(t, map[string]string{"ENCODE_TIME": "1h"})
	id, _ := signUp(t, e.accounts, "early@example.com", events.PlanPremium)
	var v events.Video
	e.staff.Must(http.StatusCreated, "POST", "/videos", content.Upload{
		Title: "Soon", Genres: []string{"drama"}, DurationSec: 60, Regions: []string{"eu"}, MinPlan: events.PlanBasic,
	}, &v)
	a, err := e.asPlayback.CheckAccess(context.Background(), &contentv1.CheckAccessRequest{VideoId: v.ID, AccountId: id, Region: "eu"})
	if err != nil || a.GetAllowed() || a.GetReason() != "video is still encoding" ||
		a.GetVideo().GetStatus() != contentv1.VideoStatus_VIDEO_STATUS_ENCODING {
		t.Fatalf("access while encoding: %v %v", a, err)
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
	e[catalog.EnvGRPC("account")] = acc.GRPCAddr
	c := kittest.Serve(t, content.Definition, e)
	v := waitReady(t, streamtest.Client{T: t, Base: c.URL}, orphan.ID)
	if len(v.Renditions) == 0 || v.Renditions[len(v.Renditions)-1].Quality != "720p" {
		t.Errorf("resumed video has renditions %+v, want up to 720p", v.Renditions)
	}
}
