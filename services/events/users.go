package events

import "github.com/switchboard-dev/switchboard/services/catalog"

// User is a user as the user service answers it and user.registered
// carries it.
type User struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// UserRegistered is the data of user.registered.
type UserRegistered struct{ User }

func (UserRegistered) EventType() string { return catalog.UserRegistered }
