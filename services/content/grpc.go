package content

import (
	"context"

	contentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/content/v1"
	"github.com/switchboard-dev/switchboard/services/events"
)

// libraryServer is the internal gRPC API over Library.
type libraryServer struct {
	contentv1.UnimplementedLibraryServer
	lib *Library
}

func (s libraryServer) GetVideo(ctx context.Context, req *contentv1.GetVideoRequest) (*contentv1.GetVideoResponse, error) {
	v, err := s.lib.Video(ctx, req.GetVideoId())
	if err != nil {
		return nil, err
	}
	return &contentv1.GetVideoResponse{Video: videoProto(v)}, nil
}

func (s libraryServer) CheckAccess(ctx context.Context, req *contentv1.CheckAccessRequest) (*contentv1.CheckAccessResponse, error) {
	a, v, err := s.lib.CheckAccess(ctx, req.GetVideoId(), req.GetAccountId(), req.GetRegion())
	if err != nil {
		return nil, err
	}
	return &contentv1.CheckAccessResponse{Allowed: a.Allowed, Reason: a.Reason, Video: videoProto(v)}, nil
}

var videoStatuses = map[string]contentv1.VideoStatus{
	Encoding: contentv1.VideoStatus_VIDEO_STATUS_ENCODING,
	Ready:    contentv1.VideoStatus_VIDEO_STATUS_READY,
}

// videoProto is a video as the internal API sends it.
func videoProto(v events.Video) *contentv1.Video {
	out := &contentv1.Video{Id: v.ID, Title: v.Title, Genres: v.Genres, DurationSec: int32(v.DurationSec), Regions: v.Regions,
		MinPlan: v.MinPlan, SourceHeight: int32(v.SourceHeight), Status: videoStatuses[v.Status]}
	for _, r := range v.Renditions {
		out.Renditions = append(out.Renditions, &contentv1.Rendition{Quality: r.Quality, Height: int32(r.Height), BitrateKbps: int32(r.BitrateKbps)})
	}
	return out
}
