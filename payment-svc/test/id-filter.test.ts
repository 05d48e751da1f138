import t from 'tap'
import { IdFilter } from '../id-filter.ts'

t.test('no false negatives; few false positives at the design load', async (t) => {
  const filter = new IdFilter(64 * 1024) // 524,288 bits → ~52k ids at ~1 %
  const ids = filter.designIds
  for (let i = 0; i < ids; i++) filter.add(`co_${i}_${i * 7919}`)
  let missing = 0
  for (let i = 0; i < ids; i++) if (!filter.mightContain(`co_${i}_${i * 7919}`)) missing++
  t.equal(missing, 0, 'every added id is reported')
  let falsePositives = 0
  const probes = 100_000
  for (let i = 0; i < probes; i++) if (filter.mightContain(`new_${i}`)) falsePositives++
  t.ok(falsePositives / probes < 0.02, `false positive rate ${(falsePositives / probes * 100).toFixed(2)} % at the design load`)
})

t.test('bounded: past its load it only answers "maybe" more often', async (t) => {
  const filter = new IdFilter(1024)
  for (let i = 0; i < 50_000; i++) filter.add(`x${i}`)
  for (let i = 0; i < 50_000; i += 997) t.ok(filter.mightContain(`x${i}`))
  t.equal(filter.added, 50_000)
})

t.test('size must be a power of two', async (t) => {
  t.throws(() => new IdFilter(1000))
  t.throws(() => new IdFilter(512))
})
