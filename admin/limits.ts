// Every bound of the admin service, in one place. Units go last.

export const adminLimits = {
  /** A request body (a merchant, a key's scope, label and expiry): small. */
  bodyBytesMax: 4_096,
  /** A request target longer than this is refused before routing. */
  urlBytesMax: 512,
  /** Operators listed in RINGPAY_ADMIN_OPERATORS; each token is compared with all of them. */
  operatorsMax: 16,
  /** A whole request, slow body included (Node's requestTimeout). */
  requestDeadlineMs: 10_000,
  /** SIGTERM: requests in flight get this long to finish. */
  shutdownDrainMs: 5_000,
} as const
