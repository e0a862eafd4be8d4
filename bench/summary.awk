# summary.awk turns `go test -bench` output (any number of passes) into a
# markdown table: for each scenario and contender, the median ns/op,
# cpu-ns/op, B/op and allocs/op, and each one's difference from
# raw_timeout in the same scenario.
#
#   awk -f summary.awk results/<run>/raw.txt

function median(key,    n, i, j, v, a) {
	n = count[key]
	for (i = 1; i <= n; i++) {
		v = vals[key, i]
		for (j = i - 1; j >= 1 && a[j] > v; j--)
			a[j + 1] = a[j]
		a[j + 1] = v
	}
	if (n % 2)
		return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}

function fmtnum(v) {
	if (v == int(v))
		return sprintf("%d", v)
	return sprintf("%.1f", v)
}

function delta(v, base, unit,    d, s) {
	if (base == "")
		return ""
	d = v - base
	s = (d >= 0 ? "+" : "") fmtnum(d) unit
	if (base != 0)
		s = s sprintf(" (%+.0f%%)", 100 * d / base)
	return s
}

/^Benchmark/ {
	name = $1
	sub(/^Benchmark/, "", name)
	sub(/-[0-9]+$/, "", name)
	n = split(name, part, "/")
	if (n == 1) {
		scenario = part[1]; who = "(floor)"
	} else {
		scenario = part[1]; who = part[2]
		for (i = 3; i <= n; i++)
			scenario = scenario " " part[i]
	}
	if (!(scenario in seenScenario)) {
		seenScenario[scenario] = 1
		scenarios[++nScenarios] = scenario
	}
	if (!((scenario, who) in seenWho)) {
		seenWho[scenario, who] = 1
		whos[scenario, ++nWho[scenario]] = who
	}
	for (i = 3; i < NF; i += 2) {
		key = scenario SUBSEP who SUBSEP $(i + 1)
		vals[key, ++count[key]] = $i
		seenUnit[$(i + 1)] = 1
	}
	samples[scenario, who]++
}

END {
	nu = split("ns/op cpu-ns/op B/op allocs/op", units, " ")
	split(" ns| ns| B|", suffix, "|")
	head = "| scenario | contender | n |"
	rule = "|---|---|--:|"
	for (u = 1; u <= nu; u++) {
		if (!(units[u] in seenUnit))
			continue
		head = head " " units[u] " | Δ vs raw_timeout |"
		rule = rule "--:|--:|"
	}
	print head
	print rule
	for (s = 1; s <= nScenarios; s++) {
		sc = scenarios[s]
		for (w = 1; w <= nWho[sc]; w++) {
			who = whos[sc, w]
			line = sprintf("| %s | %s | %d |", sc, who, samples[sc, who])
			for (u = 1; u <= nu; u++) {
				unit = units[u]
				if (!(unit in seenUnit))
					continue
				k = sc SUBSEP who SUBSEP unit
				base = sc SUBSEP "raw_timeout" SUBSEP unit
				v = (k in count) ? median(k) : ""
				d = "—"
				if (v != "" && who != "raw_timeout" && who != "(floor)" && (base in count))
					d = delta(v, median(base), suffix[u])
				line = line sprintf(" %s | %s |", v == "" ? "" : fmtnum(v), d)
			}
			print line
		}
	}
}
