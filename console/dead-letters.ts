// Dead letters: the DLQ read to its end (the `dlq` Kafka principal: READ the DLQ, WRITE the
// events topic), listed with their reasons, replayed one (by its DLQ partition@offset) or all,
// with processor/dead-letters.ts' code, as dlq-cli does. Every replay is audited. A letter's key
// is the checkout id and its dlq-merchant-id header the merchant (issue #17 part 5): with both it
// names one payment, linked and audited as such; a letter without the header (dead-lettered before
// the header, or undecodable) names none, and its key is only shown.

import type { Session } from './auth.ts'
import type { ConsoleContext } from './context.ts'
import { ConsoleProblem } from './errors.ts'
import { audit } from './flagged.ts'
import { csrfField, html, page, type Raw } from './html.ts'
import { consoleLimits as limits } from './limits.ts'
import { isValidPaymentId, paymentLabel, paymentPath } from './payments.ts'
import { mayDo } from './roles.ts'
import type { ConsumedMessage, EventProducer, TopicReader } from '../lib/event-bus.ts'
import type { PaymentId } from '../lib/payment-id.ts'
import { describeDeadLetter, dlqHeaders, replayDeadLetters } from '../processor/dead-letters.ts'

/** The payment a letter is about, when it names both ids. */
export function paymentOfLetter (letter: { merchant_id?: string | undefined, checkout_id?: string | undefined }): PaymentId | undefined {
  const { merchant_id: merchantId, checkout_id: checkoutId } = letter
  if (merchantId === undefined || checkoutId === undefined) return undefined
  const id = { merchant_id: merchantId, checkout_id: checkoutId }
  return isValidPaymentId(id) ? id : undefined
}

function paymentOfMessage (message: ConsumedMessage): PaymentId | undefined {
  return paymentOfLetter({ merchant_id: message.headers[dlqHeaders.merchantId], checkout_id: message.key ?? undefined })
}

export interface DeadLetterStore {
  list: () => Promise<ConsumedMessage[]>
  replay: (letters: readonly ConsumedMessage[]) => Promise<void>
}

export function kafkaDeadLetterStore (reader: TopicReader, producer: EventProducer, topics: { events: string, dlq: string }): DeadLetterStore {
  return {
    list: () => reader.readToEnd(topics.dlq, { messagesMax: limits.deadLettersMax, timeoutMs: limits.deadLetterReadTimeoutMs }),
    replay: (letters) => replayDeadLetters(producer, letters, topics.events, topics.dlq, limits.deadLetterPublishTimeoutMs),
  }
}

export async function deadLettersPage (ctx: ConsoleContext, session: Session, notice?: Raw): Promise<string> {
  const letters = (await ctx.deadLetters.list()).map(describeDeadLetter)
  const canReplay = mayDo(session.role, 'replay_dead_letters')
  return page('Dead letters', session, html`
${notice ?? ''}
<p>${letters.length} dead letter(s)${letters.length >= limits.deadLettersMax ? ` (the first ${limits.deadLettersMax} shown)` : ''}. A replay publishes the original event to the events topic again; processing is idempotent.</p>
${canReplay && letters.length > 0 ? html`<form method="post" action="/dead-letters/replay" data-confirm="Replay every dead letter listed?" id="replay-all">${csrfField(session)}<input type="hidden" name="which" value="all"><label>Why <input name="reason" required maxlength="${limits.reasonLengthMax}"></label><button type="submit">Replay all</button></form>` : ''}
<table id="dead-letters"><thead><tr><th>Checkout id</th><th>Merchant</th><th>Reason</th><th>Error</th><th>Failed at</th><th>From</th><th>DLQ offset</th><th></th></tr></thead><tbody>
${letters.map((l) => html`<tr data-offset="${l.dlq_offset}"><td>${linkOf(l)}</td><td>${l.merchant_id ?? '—'}</td><td>${l.reason ?? ''}</td><td>${l.error ?? ''}</td><td>${l.failed_at ?? ''}</td><td>${l.source}</td><td>${l.dlq_offset}</td>
<td>${canReplay ? html`<form method="post" action="/dead-letters/replay" class="inline replay-one">${csrfField(session)}<input type="hidden" name="which" value="${l.dlq_offset}"><input name="reason" required placeholder="why" maxlength="${limits.reasonLengthMax}"><button type="submit">Replay</button></form>` : ''}</td></tr>`)}
</tbody></table>`)
}

function linkOf (letter: ReturnType<typeof describeDeadLetter>): Raw | string {
  const payment = paymentOfLetter(letter)
  if (payment !== undefined) return html`<a href="${paymentPath(payment)}">${payment.checkout_id}</a>`
  return letter.checkout_id ?? '—'
}

/** `which`: `all` or one `<partition>@<offset>`. Returns how many were replayed. */
export async function replay (ctx: ConsoleContext, session: Session, which: string, reason: string): Promise<Raw> {
  if (which !== 'all' && !/^\d{1,6}@\d{1,20}$/.test(which)) throw new ConsoleProblem('validation_failed', 'which is all or <partition>@<offset>')
  const letters = await ctx.deadLetters.list()
  const chosen = which === 'all' ? letters : letters.filter((l) => `${l.partition}@${l.offset}` === which)
  if (chosen.length === 0) throw new ConsoleProblem('not_found', `no dead letter ${which}`)
  // The one payment audited, when one letter naming one payment is replayed.
  const one = chosen.length === 1 ? paymentOfMessage(chosen[0]!) : undefined
  try {
    await ctx.deadLetters.replay(chosen)
  } catch (error) {
    await audit(ctx, session.operator, 'dead_letters.replay', one ?? null, reason, `failed: ${(error as Error).message}`, { which, count: chosen.length })
    throw new ConsoleProblem('upstream_failed', 'Kafka did not take the replay', { cause: error })
  }
  const outcome = `replayed ${chosen.length} dead letter(s) to the events topic`
  await audit(ctx, session.operator, 'dead_letters.replay', one ?? null, reason, outcome,
    { which, letters: chosen.map((l) => ({ merchant_id: l.headers[dlqHeaders.merchantId] ?? null, checkout_id: l.key, dlq_offset: `${l.partition}@${l.offset}` })) })
  ctx.log.info({ audit: true, operator: session.operator, which, count: chosen.length }, 'dead letters replayed')
  return html`<p class="ok" id="notice">${outcome}${chosen.length === 1 ? ` (${one === undefined ? (chosen[0]!.key ?? 'no key') : paymentLabel(one)}, ${which})` : ''}. Letters replayed stay in the DLQ (it is a log); one that fails again is dead-lettered again.</p>`
}
