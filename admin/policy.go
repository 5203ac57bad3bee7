package admin

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/policy"
)

// Policy is the policy holder the policy routes read and reload (*policy.Holder).
type Policy interface {
	Current() *policy.Policy
	Info() policy.Info
	Reload(ctx context.Context) (*policy.Policy, error)
}

// reloadTimeout bounds one reload (compiling a module included).
const reloadTimeout = time.Minute

// policyInfo is GET /_swr/policy: what is loaded (file and module, their hashes, the rules, when).
func (a *Admin) policyInfo(c *fiber.Ctx) error {
	return c.JSON(a.cfg.Policy.Info())
}

// policyReload is POST /_swr/policy/reload: load the policy again, as SIGHUP does. 200 with what
// is now loaded; 422 with the reason when the file or the module is rejected (the policy in force
// stays, and the reply says what it is).
func (a *Admin) policyReload(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	if _, err := a.cfg.Policy.Reload(ctx); err != nil {
		return c.Status(fiber.StatusUnprocessableEntity).JSON(fiber.Map{
			"error": "policy rejected; the policy in force stays: " + err.Error(), "policy": a.cfg.Policy.Info(),
		})
	}
	return c.JSON(a.cfg.Policy.Info())
}

// policy returns the policy in force, nil (no policy) without a holder.
func (a *Admin) policy() *policy.Policy {
	if a.cfg.Policy == nil {
		return nil
	}
	return a.cfg.Policy.Current()
}
