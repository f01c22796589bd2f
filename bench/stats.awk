# stats.awk — awk functions the benchmark scripts prepend to their programs:
#   awk -F'\t' "$(<bench/stats.awk)"$'\n''PROGRAM' FILE
# A list is a string of numbers separated by spaces (" 3 1 2"), as the scripts collect them.

# sort_numbers(a, n): sorts a[1..n] numerically in place (insertion sort: a handful of rounds).
function sort_numbers(a, n,    i, j, v) {
    for (i = 2; i <= n; i++) {
        v = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]
        a[j + 1] = v
    }
}
function median(list,    n, a) {
    n = split(list, a, " "); sort_numbers(a, n)
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function lo(list,    n, a) { n = split(list, a, " "); sort_numbers(a, n); return a[1] }
function hi(list,    n, a) { n = split(list, a, " "); sort_numbers(a, n); return a[n] }
