// Package product is the catalog and stock service. Each product's stock
// record holds its levels and the reservations in flight, so that
// reserving, committing and releasing each move units in one
// compare-and-set of that record: two replicas never oversell, the
// operations are atomic against each other and idempotent per order id,
// each reservation ends in a state of its own (committed in the sales
// ledger, or released), and at every instant
// available + reserved + sold = stock set + restocked.
//
// Two audiences reach it. Staff (the admin role, checked here and not only
// at the gateway) create and change products and set stock, through the
// public REST API. Order's saga reserves, commits, releases and restocks
// through the internal gRPC API (switchboard.product.v1.Stock), which
// admits order's identity only.
package product

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
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

// StockLevel is the API shape of a product's stock. Sold counts the units
// committed to orders, Restocked those of them that refunds put back on
// sale, so that available + reserved + sold = stock set + restocked.
type StockLevel struct {
	ProductID string `json:"productId"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
	Restocked int64  `json:"restocked"`
}

// Reservation states. A reservation ends released, or committed (a sale);
// a sale whose order was refunded with its goods back ends restocked.
const (
	Reserved  = "reserved"
	Committed = "committed"
	Released  = "released"
	Restocked = "restocked"
)

// Reservation holds quantity of a product for an order. Restocked is what
// a refund returned of it, once restocked.
type Reservation struct {
	ProductID string    `json:"productId"`
	OrderID   string    `json:"orderId"`
	Quantity  int64     `json:"quantity"`
	Price     int64     `json:"price"`
	State     string    `json:"state"`
	Restocked int64     `json:"restocked,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Error codes of the stock API (switchboard.product.v1.Stock declares
// which method answers which).
const (
	CodeUnknownProduct      = "unknown_product"
	CodeOutOfStock          = "out_of_stock"
	CodeReservationNotFound = "reservation_not_found"
	CodeReservationReleased = "reservation_released"
	CodeReservationDone     = "reservation_committed"
	CodeRestockExceedsSale  = "restock_exceeds_sale"
	CodeIdempotencyMismatch = "idempotency_mismatch"
)

// item is what the products bucket holds.
type item struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Category string `json:"category"`
	Price    int64  `json:"price"`
}

// stock is what the stock bucket holds per product: the levels and, in
// Orders, the holds of orders not yet sold. Reserve, Commit and Release
// each move units in one compare-and-set of this record, so they are
// atomic against each other and idempotent per order, and the levels
// always add up: available + reserved + sold = stock set + restocked.
//
// A sale leaves the record: Commit writes it to the reservations ledger
// first, then moves the units and forgets the hold in one compare-and-set,
// and from then on Reserve, Commit and Release find it in the ledger. So
// the record stays as small as the reservations in flight, however many
// orders a product sells (keeping sold holds made every reserve and commit
// of a busy product read and write hundreds of them). A released hold
// stays as a tombstone for holdRetention (at most maxEndedHolds of them),
// far longer than a call can be on its way (its deadline bounds it), so a
// late reserve finds its release. Returning marks a restock in progress
// (see Restock). Active is the reservations of records written before
// Orders; a committed hold is one written before sales left the record.
type stock struct {
	Available int64            `json:"available"`
	Reserved  int64            `json:"reserved"`
	Sold      int64            `json:"sold"`
	Restocked int64            `json:"restocked,omitempty"`
	Orders    map[string]hold  `json:"orders,omitempty"`
	Active    map[string]int64 `json:"active,omitempty"`
	Returning map[string]int64 `json:"returning,omitempty"`
}

// hold is one order's reservation inside the stock record.
type hold struct {
	Quantity int64  `json:"q"`
	Price    int64  `json:"p,omitempty"`
	State    string `json:"s"`
	At       int64  `json:"at"` // when it reached State, unix seconds
}

// Ended holds are kept this long, and at most this many per product.
const (
	holdRetention = 15 * time.Minute
	maxEndedHolds = 512
)

// holdOf is the order's hold, reading a reservation of a record written
// before Orders as held.
func (s *stock) holdOf(orderID string) (hold, bool) {
	if h, ok := s.Orders[orderID]; ok {
		return h, true
	}
	if q, ok := s.Active[orderID]; ok {
		return hold{Quantity: q, State: Reserved}, true
	}
	return hold{}, false
}

// set records the order's hold, and forgets ended holds past their
// retention, the oldest first when there are too many.
func (s *stock) set(orderID string, h hold, now time.Time) {
	delete(s.Active, orderID)
	if s.Orders == nil {
		s.Orders = map[string]hold{}
	}
	h.At = now.Unix()
	s.Orders[orderID] = h
	var ended []string
	for id, o := range s.Orders {
		if o.State == Reserved {
			continue
		}
		if now.Sub(time.Unix(o.At, 0)) > holdRetention {
			delete(s.Orders, id)
			continue
		}
		ended = append(ended, id)
	}
	if over := len(ended) - maxEndedHolds; over > 0 {
		slices.SortFunc(ended, func(a, b string) int { return cmp.Compare(s.Orders[a].At, s.Orders[b].At) })
		for _, id := range ended[:over] {
			delete(s.Orders, id)
		}
	}
}

// forget drops the order's hold (its sale is in the ledger), and ended
// holds past their retention.
func (s *stock) forget(orderID string, now time.Time) {
	delete(s.Active, orderID)
	delete(s.Orders, orderID)
	for id, o := range s.Orders {
		if o.State != Reserved && now.Sub(time.Unix(o.At, 0)) > holdRetention {
			delete(s.Orders, id)
		}
	}
}

func (s stock) level(productID string) StockLevel {
	return StockLevel{ProductID: productID, Available: s.Available, Reserved: s.Reserved, Sold: s.Sold, Restocked: s.Restocked}
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
	if err := firstInvalid(validName(n.Name), validCategory(n.Category), validPrice(n.Price)); err != nil {
		return err
	}
	if n.Stock < 0 || n.Stock > 1e9 {
		return kit.Invalid("stock", "stock must be between 0 and 1e9")
	}
	return nil
}

// ProductPatch is the body of PATCH /products/{id}: the fields to change,
// absent ones kept. Stock is not among them; PUT /stock/{id} sets it.
type ProductPatch struct {
	Name     *string `json:"name"`
	Category *string `json:"category"`
	Price    *int64  `json:"price"`
}

// Validate checks the fields a patch sets, with the rules of a new product.
func (p ProductPatch) Validate() error {
	var errs []*kit.Error
	if p.Name != nil {
		errs = append(errs, validName(*p.Name))
	}
	if p.Category != nil {
		errs = append(errs, validCategory(*p.Category))
	}
	if p.Price != nil {
		errs = append(errs, validPrice(*p.Price))
	}
	return firstInvalid(errs...)
}

func validName(name string) *kit.Error {
	if strings.TrimSpace(name) == "" || len(name) > 200 {
		return kit.Invalid("name", "name must be 1-200 characters")
	}
	return nil
}

func validCategory(category string) *kit.Error {
	if !kit.ValidID(category) {
		return kit.Invalid("category", "category must be 1-64 letters, digits, '-' or '_'")
	}
	return nil
}

func validPrice(price int64) *kit.Error {
	if price <= 0 || price > 1e12 {
		return kit.Invalid("price", "price must be a positive amount in minor units, at most 1e12")
	}
	return nil
}

// firstInvalid returns the first non-nil error as an error, so a nil
// *kit.Error never becomes a non-nil error interface.
func firstInvalid(errs ...*kit.Error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
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

// Update changes a product's name, category or price. Reservations keep
// the price they were made at.
func (c *Catalog) Update(ctx context.Context, id string, p ProductPatch) (Product, error) {
	if _, err := c.item(ctx, id); err != nil {
		return Product{}, err
	}
	if err := p.Validate(); err != nil {
		return Product{}, err
	}
	it, err := c.items.Update(ctx, id, func(it *item) error {
		if p.Name != nil {
			it.Name = strings.TrimSpace(*p.Name)
		}
		if p.Category != nil {
			it.Category = *p.Category
		}
		if p.Price != nil {
			it.Price = *p.Price
		}
		return nil
	})
	if errors.Is(err, kit.ErrNotFound) {
		return Product{}, kit.NotFound("product %q not found", id)
	}
	if err != nil {
		return Product{}, err
	}
	st, err := c.stock(ctx, id)
	if err != nil {
		return Product{}, err
	}
	return Product{ID: it.ID, Name: it.Name, Category: it.Category, Price: it.Price, Stock: st.Available}, nil
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
	return st.level(id), err
}

// SetAvailable sets the available quantity; reservations and sales are
// untouched.
func (c *Catalog) SetAvailable(ctx context.Context, id string, available int64) (StockLevel, error) {
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
	return st.level(id), err
}

func resKey(productID, orderID string) string { return "res." + productID + "." + orderID }

// The stock operations are order's, over gRPC: their fields are named as
// the request messages of switchboard.product.v1.Stock name them.

// validRefs checks the product and order ids of a stock operation.
func validRefs(productID, orderID string) error {
	switch {
	case !kit.ValidID(productID):
		return kit.Invalid("product_id", "product_id must be 1-64 letters, digits, '-' or '_'")
	case !kit.ValidID(orderID):
		return kit.Invalid("order_id", "order_id must be 1-64 letters, digits, '-' or '_'")
	}
	return nil
}

func validQuantity(quantity int64) error {
	if quantity <= 0 || quantity > 1e6 {
		return kit.Invalid("quantity", "quantity must be between 1 and 1e6")
	}
	return nil
}

func unknownProduct(id string) *kit.Error {
	return &kit.Error{Status: http.StatusNotFound, Code: CodeUnknownProduct, Field: "product_id",
		Message: fmt.Sprintf("product %q not found", id)}
}

func reservationNotFound(productID, orderID string) *kit.Error {
	return kit.Errorf(http.StatusNotFound, CodeReservationNotFound, "order %s reserved no %s", orderID, productID)
}

// Level is a product's stock for order (GetStock): Stock, with an unknown
// product named as the stock API names it.
func (c *Catalog) Level(ctx context.Context, id string) (StockLevel, error) {
	if !kit.ValidID(id) {
		return StockLevel{}, kit.Invalid("product_id", "product_id must be 1-64 letters, digits, '-' or '_'")
	}
	l, err := c.Stock(ctx, id)
	if e := kit.AsError(err); err != nil && e.Status == http.StatusNotFound {
		return StockLevel{}, unknownProduct(id)
	}
	return l, err
}

// Reserve holds quantity for orderID, in one compare-and-set of the stock
// record. Repeating it returns the existing reservation (created false); a
// different quantity for the same order is a conflict, and so is reserving
// after a release (the release may have come first: it leaves a hold
// saying so).
func (c *Catalog) Reserve(ctx context.Context, productID, orderID string, quantity int64) (Reservation, bool, error) {
	if err := validRefs(productID, orderID); err != nil {
		return Reservation{}, false, err
	}
	if err := validQuantity(quantity); err != nil {
		return Reservation{}, false, err
	}
	p, _, err := c.items.Get(ctx, productID)
	if errors.Is(err, kit.ErrNotFound) {
		return Reservation{}, false, unknownProduct(productID)
	}
	if err != nil {
		return Reservation{}, false, err
	}
	var h hold
	var created bool
	var sale *Reservation
	_, err = c.stocks.Upsert(ctx, productID, func(s *stock, _ bool) error {
		created, sale = false, nil
		var ok bool
		if h, ok = s.holdOf(orderID); ok {
			switch {
			case h.State == Released:
				return kit.Errorf(http.StatusConflict, CodeReservationReleased, "the reservation of order %s was released", orderID)
			case h.Quantity != quantity:
				return &kit.Error{Status: http.StatusConflict, Code: CodeIdempotencyMismatch, Field: "quantity",
					Message: fmt.Sprintf("order %s already reserved %d", orderID, h.Quantity)}
			}
			if h.Price == 0 {
				h.Price = p.Price
			}
			return kit.ErrNoChange
		}
		// No hold: a sale has left the record for the ledger. Commit writes
		// the ledger before it removes the hold, and this read comes after
		// the record's, so a late or repeated reserve of a sold order finds
		// the sale and reserves nothing again.
		if r, sold, err := c.sale(ctx, productID, orderID); err != nil {
			return err
		} else if sold {
			if r.Quantity != quantity {
				return &kit.Error{Status: http.StatusConflict, Code: CodeIdempotencyMismatch, Field: "quantity",
					Message: fmt.Sprintf("order %s already bought %d", orderID, r.Quantity)}
			}
			sale = &r
			return kit.ErrNoChange
		}
		if s.Available < quantity {
			return &kit.Error{Status: http.StatusConflict, Code: CodeOutOfStock, Field: "quantity",
				Message: fmt.Sprintf("only %d of %s available", s.Available, productID)}
		}
		s.Available -= quantity
		s.Reserved += quantity
		h = hold{Quantity: quantity, Price: p.Price, State: Reserved}
		s.set(orderID, h, c.now())
		created = true
		return nil
	})
	if err != nil {
		return Reservation{}, false, err
	}
	if sale != nil {
		return *sale, false, nil
	}
	return reservationOf(productID, orderID, h, c.now()), created, nil
}

func reservationOf(productID, orderID string, h hold, now time.Time) Reservation {
	at := now.UTC()
	if h.At != 0 {
		at = time.Unix(h.At, 0).UTC()
	}
	return Reservation{ProductID: productID, OrderID: orderID, Quantity: h.Quantity, Price: h.Price, State: h.State, UpdatedAt: at}
}

// errNoHold: the stock record holds nothing for the order; the caller
// looks in the ledger.
var errNoHold = errors.New("no hold")

// sale is the order's committed sale in the ledger, found false when it
// has none.
func (c *Catalog) sale(ctx context.Context, productID, orderID string) (Reservation, bool, error) {
	r, _, err := c.reservations.Get(ctx, resKey(productID, orderID))
	if errors.Is(err, kit.ErrNotFound) {
		return Reservation{}, false, nil
	}
	return r, err == nil && (r.State == Committed || r.State == Restocked), err
}

// Release returns a reservation's quantity to the available stock, in one
// compare-and-set. Releasing an order that holds nothing records a
// released hold, so a late Reserve for that order cannot take stock after
// its compensation; a committed sale cannot be released.
func (c *Catalog) Release(ctx context.Context, productID, orderID string) (Reservation, error) {
	if err := validRefs(productID, orderID); err != nil {
		return Reservation{}, err
	}
	committed := func() error {
		return kit.Errorf(http.StatusConflict, CodeReservationDone, "the reservation of order %s is committed", orderID)
	}
	var h hold
	release := func(tombstone bool) error {
		_, err := c.stocks.Update(ctx, productID, func(s *stock) error {
			var ok bool
			h, ok = s.holdOf(orderID)
			switch {
			case !ok && !tombstone:
				return errNoHold
			case !ok:
				h = hold{State: Released}
			case h.State == Released:
				return kit.ErrNoChange
			case h.State != Reserved:
				return committed()
			default:
				s.Available += h.Quantity
				s.Reserved -= h.Quantity
				h.State = Released
			}
			s.set(orderID, h, c.now())
			return nil
		})
		return err
	}
	err := release(false)
	if errors.Is(err, errNoHold) {
		// Nothing held: a sale older than the holds kept, or nothing yet.
		if _, sold, serr := c.sale(ctx, productID, orderID); serr != nil {
			return Reservation{}, serr
		} else if sold {
			return Reservation{}, committed()
		}
		err = release(true)
	}
	if errors.Is(err, kit.ErrNotFound) {
		// No stock record: nothing was or can be reserved.
		return Reservation{ProductID: productID, OrderID: orderID, State: Released, UpdatedAt: c.now().UTC()}, nil
	}
	if err != nil {
		return Reservation{}, err
	}
	return reservationOf(productID, orderID, h, c.now()), nil
}

// Commit turns a reservation into a sale. The sale is written to the
// ledger first; then one compare-and-set of the stock record moves the
// reserved units to sold and forgets the hold. A crash between the two
// leaves the hold reserved and the sale in the ledger, and the saga's
// retry of Commit finishes the move; a repeated Commit after it finds the
// sale in the ledger.
func (c *Catalog) Commit(ctx context.Context, productID, orderID string) (Reservation, error) {
	if err := validRefs(productID, orderID); err != nil {
		return Reservation{}, err
	}
	released := func() error {
		return kit.Errorf(http.StatusConflict, CodeReservationReleased, "the reservation of order %s was released", orderID)
	}
	s, rev, err := c.stocks.Get(ctx, productID)
	if err != nil && !errors.Is(err, kit.ErrNotFound) {
		return Reservation{}, err
	}
	h, held := s.holdOf(orderID)
	switch {
	case !held:
		// Sold already, or never reserved.
		r, sold, serr := c.sale(ctx, productID, orderID)
		switch {
		case serr != nil:
			return Reservation{}, serr
		case sold:
			return r, nil
		}
		return Reservation{}, reservationNotFound(productID, orderID)
	case h.State == Released:
		return Reservation{}, released()
	}
	r := reservationOf(productID, orderID, h, c.now())
	r.State = Committed
	if r, err = c.recordSale(ctx, r); err != nil || h.State == Committed {
		// A committed hold was sold before sales left the record; the
		// ledger now has it too.
		return r, err
	}
	var lost bool
	_, _, err = c.stocks.UpdateAt(ctx, productID, s, rev, func(s *stock) error {
		h, held := s.holdOf(orderID)
		switch {
		case !held || h.State == Committed:
			return kit.ErrNoChange // a concurrent Commit moved it
		case h.State == Released:
			// Released between the read and this write: only a driver that
			// lost its saga's lease can race its own order like this. The
			// ledger must not claim the sale.
			lost = true
			return released()
		}
		s.Reserved -= h.Quantity
		s.Sold += h.Quantity
		s.forget(orderID, c.now())
		return nil
	})
	if lost {
		if _, uerr := c.reservations.Update(ctx, resKey(productID, orderID), func(cur *Reservation) error {
			if cur.State != Committed {
				return kit.ErrNoChange
			}
			cur.State, cur.UpdatedAt = Released, c.now().UTC()
			return nil
		}); uerr != nil {
			return Reservation{}, errors.Join(err, uerr)
		}
	}
	if err != nil {
		return Reservation{}, err
	}
	return r, nil
}

// recordSale writes a sale to the ledger. One written before (an earlier
// Commit, or a reservation record from before the stock record held
// reservations) stands if it is a sale, and is replaced otherwise.
func (c *Catalog) recordSale(ctx context.Context, r Reservation) (Reservation, error) {
	k := resKey(r.ProductID, r.OrderID)
	if _, err := c.reservations.Create(ctx, k, r); errors.Is(err, kit.ErrExists) {
		return c.reservations.Upsert(ctx, k, func(cur *Reservation, _ bool) error {
			if cur.State == Committed || cur.State == Restocked {
				return kit.ErrNoChange
			}
			*cur = r
			return nil
		})
	} else if err != nil {
		return Reservation{}, err
	}
	return r, nil
}

// restocked is what a refund returned of a restocked reservation; records
// written before Restocked was kept returned all of it.
func (r Reservation) restocked() int64 {
	if r.Restocked == 0 {
		return r.Quantity
	}
	return r.Restocked
}

// Restock puts quantity of the units order orderID bought back on the
// shelf, after a staff refund that takes the goods back: they return to
// Available and count in Restocked (the sale stays in Sold), once per order
// however often it is asked (replayed reports that they had moved before
// this call). quantity is at most what the order bought; only a committed
// sale can be restocked.
//
// Three writes, each idempotent: the stock record moves the units and marks
// the order in Returning (one CAS, so the units move once); the reservation
// record becomes restocked; the mark is removed. A retry after a crash
// finds where the last attempt stopped.
func (c *Catalog) Restock(ctx context.Context, productID, orderID string, quantity int64) (Reservation, bool, error) {
	if err := validRefs(productID, orderID); err != nil {
		return Reservation{}, false, err
	}
	if err := validQuantity(quantity); err != nil {
		return Reservation{}, false, err
	}
	mismatch := func(had int64) error {
		return &kit.Error{Status: http.StatusConflict, Code: CodeIdempotencyMismatch, Field: "quantity",
			Message: fmt.Sprintf("order %s restocked %d of %s", orderID, had, productID)}
	}
	r, _, err := c.reservations.Get(ctx, resKey(productID, orderID))
	if errors.Is(err, kit.ErrNotFound) {
		return Reservation{}, false, reservationNotFound(productID, orderID)
	}
	if err != nil {
		return Reservation{}, false, err
	}
	switch r.State {
	case Restocked:
		if r.restocked() != quantity {
			return r, true, mismatch(r.restocked())
		}
		return r, true, c.unmarkReturning(ctx, productID, orderID)
	case Committed:
	default:
		return r, false, kit.Errorf(http.StatusNotFound, CodeReservationNotFound,
			"the reservation of order %s is %s: it bought nothing to restock", orderID, r.State)
	}
	if quantity > r.Quantity {
		return r, false, &kit.Error{Status: http.StatusConflict, Code: CodeRestockExceedsSale, Field: "quantity",
			Message: fmt.Sprintf("order %s bought %d of %s", orderID, r.Quantity, productID)}
	}
	var replayed bool
	if _, err := c.stocks.Upsert(ctx, productID, func(s *stock, _ bool) error {
		replayed = false
		if q, ok := s.Returning[orderID]; ok {
			if q != quantity {
				return mismatch(q)
			}
			replayed = true
			return kit.ErrNoChange // moved before a crash; the record follows
		}
		s.Available += quantity
		s.Restocked += quantity
		if s.Returning == nil {
			s.Returning = map[string]int64{}
		}
		s.Returning[orderID] = quantity
		return nil
	}); err != nil {
		return Reservation{}, false, err
	}
	r, err = c.reservations.Update(ctx, resKey(productID, orderID), func(r *Reservation) error {
		if r.State == Restocked {
			return kit.ErrNoChange
		}
		r.State, r.Restocked, r.UpdatedAt = Restocked, quantity, c.now().UTC()
		return nil
	})
	if err != nil {
		return Reservation{}, false, err
	}
	return r, replayed, c.unmarkReturning(ctx, productID, orderID)
}

func (c *Catalog) unmarkReturning(ctx context.Context, productID, orderID string) error {
	_, err := c.stocks.Update(ctx, productID, func(s *stock) error {
		if _, ok := s.Returning[orderID]; !ok {
			return kit.ErrNoChange
		}
		delete(s.Returning, orderID)
		return nil
	})
	if errors.Is(err, kit.ErrNotFound) {
		return nil
	}
	return err
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
