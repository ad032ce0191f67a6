/**
 * Likely misspellings: a column name one or two letters away from a known one (`guidence` → `guidance`).
 *
 * Pure: no I/O, no clock, no environment.
 */

/** Levenshtein distance, capped: only "is it a likely typo" matters. */
function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charAt(i - 1) === b.charAt(j - 1) ? 0 : 1;
      const value = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
      current.push(value);
      rowMin = Math.min(rowMin, value);
    }
    if (rowMin > cap) return cap + 1;
    previous = current;
  }
  return previous[b.length] ?? cap + 1;
}

/** The known name `name` is probably a misspelling of, if any (`guidence` → `guidance`, `seeds` → `seed`). */
export function likelyMisspellingOf(name: string, known: Iterable<string>): string | undefined {
  if (name.length < 4) return undefined;
  const cap = name.length <= 6 ? 1 : 2;
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    if (candidate.length < 4) continue;
    const distance = editDistance(name, candidate, cap);
    if (distance <= cap && (best === undefined || distance < best.distance)) best = { name: candidate, distance };
  }
  return best?.name;
}
