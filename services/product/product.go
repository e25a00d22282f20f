// Package product is the catalog and stock service. Stock is reserved per
// order with compare-and-set on the product's stock record, so two replicas
// never oversell, and every stock operation is idempotent per order id.
package product

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Product is the API shape of a catalog entry; Stock is what is available.
type Product struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Category string `json:"category"`
	Price    int64  `json:"price"`
	Stock    int64  `json:"stock"`
}

// StockLevel is the API shape of a product's stock.
type StockLevel struct {
	ProductID string `json:"productId"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
}

// Reservation states.
const (
	Reserved  = "reserved"
	Committed = "committed"
	Released  = "released"
)

// Reservation holds quantity of a product for an order.
type Reservation struct {
	ProductID string    `json:"productId"`
	OrderID   string    `json:"orderId"`
	Quantity  int64     `json:"quantity"`
	Price     int64     `json:"price"`
	State     string    `json:"state"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Error codes of the stock API.
const (
	CodeOutOfStock          = "out_of_stock"
	CodeReservationReleased = "reservation_released"
	CodeReservationDone     = "reservation_committed"
	CodeIdempotencyMismatch = "idempotency_mismatch"
)

// item is what the products bucket holds.
type item struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Category string `json:"category"`
	Price    int64  `json:"price"`
}

// stock is what the stock bucket holds per product. Active lists the
// quantities reserved by orders not yet committed or released: it is what
// makes Reserve, Commit and Release idempotent inside one CAS write.
type stock struct {
	Available int64            `json:"available"`
	Reserved  int64            `json:"reserved"`
	Active    map[string]int64 `json:"active,omitempty"`
}

// Catalog holds the logic; HTTP handlers only decode and encode.
type Catalog struct {
	items        *kit.Store[item]
	stocks       *kit.Store[stock]
	reservations *kit.Store[Reservation]
	now          func() time.Time
}

// NewCatalog refuses nil stores.
func NewCatalog(items *kit.Store[item], stocks *kit.Store[stock], reservations *kit.Store[Reservation]) (*Catalog, error) {
	if items == nil || stocks == nil || reservations == nil {
		return nil, errors.New("product: NewCatalog needs its stores")
	}
	return &Catalog{items: items, stocks: stocks, reservations: reservations, now: time.Now}, nil
}

// NewProduct is the body of POST /products.
type NewProduct struct {
	Name     string `json:"name"`
	Category string `json:"category"`
	Price    int64  `json:"price"`
	Stock    int64  `json:"stock"`
}

// Validate checks a new product.
func (n NewProduct) Validate() error {
	switch {
	case strings.TrimSpace(n.Name) == "" || len(n.Name) > 200:
		return kit.Invalid("name", "name must be 1-200 characters")
	case !kit.ValidID(n.Category):
		return kit.Invalid("category", "category must be 1-64 letters, digits, '-' or '_'")
	case n.Price <= 0 || n.Price > 1e12:
		return kit.Invalid("price", "price must be a positive amount in minor units")
	case n.Stock < 0 || n.Stock > 1e9:
		return kit.Invalid("stock", "stock must be between 0 and 1e9")
	}
	return nil
}

// Create adds a product with its initial stock.
func (c *Catalog) Create(ctx context.Context, n NewProduct) (Product, error) {
	if err := n.Validate(); err != nil {
		return Product{}, err
	}
	return c.create(ctx, kit.NewID(), n)
}

func (c *Catalog) create(ctx context.Context, id string, n NewProduct) (Product, error) {
	it := item{ID: id, Name: strings.TrimSpace(n.Name), Category: n.Category, Price: n.Price}
	// Stock first: a product visible without its stock record would read as
	// out of stock, while a stock record without a product is unreachable.
	if _, err := c.stocks.Create(ctx, id, stock{Available: n.Stock}); err != nil && !errors.Is(err, kit.ErrExists) {
		return Product{}, err
	}
	if _, err := c.items.Create(ctx, id, it); err != nil {
		return Product{}, err
	}
	return Product{ID: id, Name: it.Name, Category: it.Category, Price: it.Price, Stock: n.Stock}, nil
}

func (c *Catalog) item(ctx context.Context, id string) (item, error) {
	if !kit.ValidID(id) {
		return item{}, kit.NotFound("product %q not found", id)
	}
	it, _, err := c.items.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return item{}, kit.NotFound("product %q not found", id)
	}
	return it, err
}

// Get returns one product with its available stock.
func (c *Catalog) Get(ctx context.Context, id string) (Product, error) {
	it, err := c.item(ctx, id)
	if err != nil {
		return Product{}, err
	}
	st, err := c.stock(ctx, id)
	if err != nil {
		return Product{}, err
	}
	return Product{ID: it.ID, Name: it.Name, Category: it.Category, Price: it.Price, Stock: st.Available}, nil
}

// List returns every product, or those of one category.
func (c *Catalog) List(ctx context.Context, category string) ([]Product, error) {
	items, err := c.items.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []Product{}
	for _, it := range items {
		if category != "" && it.Category != category {
			continue
		}
		st, err := c.stock(ctx, it.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, Product{ID: it.ID, Name: it.Name, Category: it.Category, Price: it.Price, Stock: st.Available})
	}
	return out, nil
}

func (c *Catalog) stock(ctx context.Context, id string) (stock, error) {
	st, _, err := c.stocks.Get(ctx, id)
	if errors.Is(err, kit.ErrNotFound) {
		return stock{}, nil
	}
	return st, err
}

// Stock returns a product's stock level.
func (c *Catalog) Stock(ctx context.Context, id string) (StockLevel, error) {
	if _, err := c.item(ctx, id); err != nil {
		return StockLevel{}, err
	}
	st, err := c.stock(ctx, id)
	return StockLevel{ProductID: id, Available: st.Available, Reserved: st.Reserved}, err
}

// Restock sets the available quantity; reservations are untouched.
func (c *Catalog) Restock(ctx context.Context, id string, available int64) (StockLevel, error) {
	if available < 0 || available > 1e9 {
		return StockLevel{}, kit.Invalid("available", "available must be between 0 and 1e9")
	}
	if _, err := c.item(ctx, id); err != nil {
		return StockLevel{}, err
	}
	st, err := c.stocks.Upsert(ctx, id, func(s *stock, _ bool) error {
		s.Available = available
		return nil
	})
	return StockLevel{ProductID: id, Available: st.Available, Reserved: st.Reserved}, err
}

func resKey(productID, orderID string) string { return "res." + productID + "." + orderID }

// Reserve holds quantity for orderID. Repeating it returns the existing
// reservation (created false); a different quantity for the same order is a
// conflict, and so is reserving again after a release.
func (c *Catalog) Reserve(ctx context.Context, productID, orderID string, quantity int64) (Reservation, bool, error) {
	if !kit.ValidID(orderID) {
		return Reservation{}, false, kit.Invalid("orderId", "orderId must be 1-64 letters, digits, '-' or '_'")
	}
	if quantity <= 0 || quantity > 1e6 {
		return Reservation{}, false, kit.Invalid("quantity", "quantity must be between 1 and 1e6")
	}
	if r, ok, err := c.existing(ctx, productID, orderID, quantity); ok || err != nil {
		return r, false, err
	}
	p, err := c.item(ctx, productID)
	if err != nil {
		return Reservation{}, false, err
	}
	_, err = c.stocks.Upsert(ctx, productID, func(s *stock, _ bool) error {
		if _, ok := s.Active[orderID]; ok {
			return kit.ErrNoChange // reserved before a crash; the record follows
		}
		if s.Available < quantity {
			return &kit.Error{Status: http.StatusConflict, Code: CodeOutOfStock, Field: "quantity",
				Message: fmt.Sprintf("only %d of %s available", s.Available, productID)}
		}
		s.Available -= quantity
		s.Reserved += quantity
		if s.Active == nil {
			s.Active = map[string]int64{}
		}
		s.Active[orderID] = quantity
		return nil
	})
	if err != nil {
		return Reservation{}, false, err
	}
	r := Reservation{ProductID: productID, OrderID: orderID, Quantity: quantity, Price: p.Price, State: Reserved, UpdatedAt: c.now().UTC()}
	if _, err := c.reservations.Create(ctx, resKey(productID, orderID), r); errors.Is(err, kit.ErrExists) {
		r, ok, err := c.existing(ctx, productID, orderID, quantity)
		if !ok && err == nil {
			err = fmt.Errorf("reservation %s/%s vanished", productID, orderID)
		}
		return r, false, err
	} else if err != nil {
		return Reservation{}, false, err
	}
	return r, true, nil
}

// existing answers a repeated Reserve from the reservation record.
func (c *Catalog) existing(ctx context.Context, productID, orderID string, quantity int64) (Reservation, bool, error) {
	r, _, err := c.reservations.Get(ctx, resKey(productID, orderID))
	if errors.Is(err, kit.ErrNotFound) {
		return Reservation{}, false, nil
	}
	if err != nil {
		return Reservation{}, false, err
	}
	switch {
	case r.State == Released:
		return r, true, kit.Errorf(http.StatusConflict, CodeReservationReleased, "the reservation of order %s was released", orderID)
	case r.Quantity != quantity:
		return r, true, &kit.Error{Status: http.StatusConflict, Code: CodeIdempotencyMismatch, Field: "quantity",
			Message: fmt.Sprintf("order %s already reserved %d", orderID, r.Quantity)}
	}
	return r, true, nil
}

// Release returns a reservation's quantity to the available stock. Releasing
// an unknown reservation records a tombstone, so a late Reserve for that
// order cannot take stock after its compensation.
func (c *Catalog) Release(ctx context.Context, productID, orderID string) (Reservation, error) {
	if !kit.ValidID(productID) || !kit.ValidID(orderID) {
		return Reservation{}, kit.NotFound("reservation not found")
	}
	r, _, err := c.reservations.Get(ctx, resKey(productID, orderID))
	if err != nil && !errors.Is(err, kit.ErrNotFound) {
		return Reservation{}, err
	}
	switch r.State {
	case Released:
		return r, nil
	case Committed:
		return r, kit.Errorf(http.StatusConflict, CodeReservationDone, "the reservation of order %s is committed", orderID)
	}
	var qty int64
	if _, err := c.stocks.Update(ctx, productID, func(s *stock) error {
		q, ok := s.Active[orderID]
		if !ok {
			return kit.ErrNoChange
		}
		qty = q
		s.Available += q
		s.Reserved -= q
		delete(s.Active, orderID)
		return nil
	}); err != nil && !errors.Is(err, kit.ErrNotFound) {
		return Reservation{}, err
	}
	return c.reservations.Upsert(ctx, resKey(productID, orderID), func(r *Reservation, exists bool) error {
		if exists && r.State != Reserved {
			return kit.ErrNoChange
		}
		if !exists {
			*r = Reservation{ProductID: productID, OrderID: orderID, Quantity: qty}
		}
		r.State, r.UpdatedAt = Released, c.now().UTC()
		return nil
	})
}

// Commit turns a reservation into a sale: the reserved quantity leaves the
// stock for good.
func (c *Catalog) Commit(ctx context.Context, productID, orderID string) (Reservation, error) {
	notFound := kit.NotFound("no reservation of %s for order %s", productID, orderID)
	if !kit.ValidID(productID) || !kit.ValidID(orderID) {
		return Reservation{}, notFound
	}
	r, _, err := c.reservations.Get(ctx, resKey(productID, orderID))
	found := err == nil
	if err != nil && !errors.Is(err, kit.ErrNotFound) {
		return Reservation{}, err
	}
	switch r.State {
	case Committed:
		return r, nil
	case Released:
		return r, kit.Errorf(http.StatusConflict, CodeReservationReleased, "the reservation of order %s was released", orderID)
	}
	var qty int64
	var active bool
	if _, err := c.stocks.Update(ctx, productID, func(s *stock) error {
		qty, active = s.Active[orderID]
		if !active {
			return kit.ErrNoChange
		}
		s.Reserved -= qty
		delete(s.Active, orderID)
		return nil
	}); err != nil && !errors.Is(err, kit.ErrNotFound) {
		return Reservation{}, err
	}
	if !found && !active {
		return Reservation{}, notFound
	}
	return c.reservations.Upsert(ctx, resKey(productID, orderID), func(r *Reservation, exists bool) error {
		if exists && r.State == Committed {
			return kit.ErrNoChange
		}
		if !exists {
			*r = Reservation{ProductID: productID, OrderID: orderID, Quantity: qty}
		}
		r.State, r.UpdatedAt = Committed, c.now().UTC()
		return nil
	})
}

// demo is the catalog seeded on a first run. Fixed ids make seeding
// idempotent across restarts and replicas.
var demo = []struct {
	id string
	NewProduct
}{
	{"keyboard", NewProduct{Name: "Mechanical keyboard", Category: "electronics", Price: 12900, Stock: 100}},
	{"headphones", NewProduct{Name: "Noise-cancelling headphones", Category: "electronics", Price: 24900, Stock: 50}},
	{"monitor", NewProduct{Name: "27-inch 4K monitor", Category: "electronics", Price: 39900, Stock: 25}},
	{"espresso", NewProduct{Name: "Espresso beans, 1 kg", Category: "grocery", Price: 2400, Stock: 500}},
	{"teapot", NewProduct{Name: "Cast-iron teapot", Category: "kitchen", Price: 4500, Stock: 40}},
	{"notebook", NewProduct{Name: "Dotted notebook", Category: "stationery", Price: 900, Stock: 1000}},
}

// Seed creates the demo products that do not exist yet.
func (c *Catalog) Seed(ctx context.Context) error {
	for _, d := range demo {
		if _, err := c.create(ctx, d.id, d.NewProduct); err != nil && !errors.Is(err, kit.ErrExists) {
			return fmt.Errorf("seed %s: %w", d.id, err)
		}
	}
	return nil
}
