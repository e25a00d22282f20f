package playback

import (
	"context"
	"errors"

	accountv1 "github.com/switchboard-dev/switchboard/gen/switchboard/account/v1"
	contentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/content/v1"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Accounts is what playback asks of account: the viewer's plan and
// profiles. Playback authenticated the viewer (the token's subject is the
// account id) and asks for that account only.
type Accounts interface {
	// Account reads an account; ErrUnknownAccount when there is none.
	Account(ctx context.Context, accountID string) (events.Account, error)
}

// Library is what playback asks of content.
type Library interface {
	// CheckAccess decides whether the account may watch the video from the
	// region, and returns the video; ErrUnknownVideo when there is none.
	CheckAccess(ctx context.Context, videoID, accountID, region string) (Access, events.Video, error)
}

// Access is content's decision: allowed, or why not.
type Access struct {
	Allowed bool
	Reason  string
}

// Errors of the ports. A failure to reach an upstream is a 503
// dependency_unavailable *kit.Error.
var (
	ErrUnknownAccount = errors.New("unknown account")
	ErrUnknownVideo   = errors.New("unknown video")
)

var (
	accountReasons = kit.Reasons{"unknown_account": ErrUnknownAccount}
	contentReasons = kit.Reasons{"unknown_video": ErrUnknownVideo}
)

// GRPCAccounts is Accounts over account's internal gRPC API.
type GRPCAccounts struct{ c accountv1.AccountsClient }

// NewGRPCAccounts wraps the client of account.
func NewGRPCAccounts(cc *kit.GRPCClient) GRPCAccounts {
	return GRPCAccounts{c: accountv1.NewAccountsClient(cc)}
}

func (a GRPCAccounts) Account(ctx context.Context, accountID string) (events.Account, error) {
	resp, err := a.c.GetAccount(ctx, &accountv1.GetAccountRequest{AccountId: accountID})
	if err != nil {
		return events.Account{}, accountReasons.Wrap(err)
	}
	acc := resp.GetAccount()
	out := events.Account{ID: acc.GetId(), Plan: acc.GetPlan(), Profiles: []events.Profile{}}
	for _, p := range acc.GetProfiles() {
		out.Profiles = append(out.Profiles, events.Profile{ID: p.GetId(), Name: p.GetName()})
	}
	return out, nil
}

// GRPCLibrary is Library over content's internal gRPC API.
type GRPCLibrary struct{ c contentv1.LibraryClient }

// NewGRPCLibrary wraps the client of content.
func NewGRPCLibrary(cc *kit.GRPCClient) GRPCLibrary {
	return GRPCLibrary{c: contentv1.NewLibraryClient(cc)}
}

func (l GRPCLibrary) CheckAccess(ctx context.Context, videoID, accountID, region string) (Access, events.Video, error) {
	resp, err := l.c.CheckAccess(ctx, &contentv1.CheckAccessRequest{VideoId: videoID, AccountId: accountID, Region: region})
	if err != nil {
		return Access{}, events.Video{}, contentReasons.Wrap(err)
	}
	v := resp.GetVideo()
	video := events.Video{ID: v.GetId(), Title: v.GetTitle(), Genres: v.GetGenres(), DurationSec: int(v.GetDurationSec()),
		Regions: v.GetRegions(), MinPlan: v.GetMinPlan(), SourceHeight: int(v.GetSourceHeight())}
	switch v.GetStatus() {
	case contentv1.VideoStatus_VIDEO_STATUS_READY:
		video.Status = "ready"
	case contentv1.VideoStatus_VIDEO_STATUS_ENCODING:
		video.Status = "encoding"
	default:
		return Access{}, events.Video{}, kit.Unavailable("content answered a video in status %v", v.GetStatus())
	}
	for _, r := range v.GetRenditions() {
		video.Renditions = append(video.Renditions, events.Rendition{Quality: r.GetQuality(), Height: int(r.GetHeight()), BitrateKbps: int(r.GetBitrateKbps())})
	}
	return Access{Allowed: resp.GetAllowed(), Reason: resp.GetReason()}, video, nil
}
