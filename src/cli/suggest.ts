// "Did you mean …?" for a misspelled command or flag: the closest known word by edit distance
// (fastest-levenshtein), offered only when it is close enough to be what was meant.
import { distance } from 'fastest-levenshtein';

/** How many edits a word of this length may be from a candidate and still be offered it. */
function tolerance(word: string): number {
  const letters = word.replace(/^-+/, '').length;
  if (letters <= 3) return 1;
  if (letters <= 8) return 2;
  return Math.floor(letters / 3);
}

/** The candidate nearest to `word` if it is within the tolerance; ties go to the first listed. */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const d = distance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= tolerance(word) ? best : undefined;
}
