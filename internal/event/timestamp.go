package event

// Timestamp bounds: the instants RFC 3339 can write, years 0000 to 9999 in
// UTC. Epoch-millisecond timestamps outside them are rejected too, so that
// every accepted event can be written back as RFC 3339 (see Encode).
const (
	MinTimestamp int64 = -62167219200000 // 0000-01-01T00:00:00.000Z
	MaxTimestamp int64 = 253402300799999 // 9999-12-31T23:59:59.999Z
)

// parseMillis parses a valid JSON number as integer epoch milliseconds
// within [MinTimestamp, MaxTimestamp].
func parseMillis(b []byte) (int64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	// 16 digits already exceed MaxTimestamp: no overflow below that.
	if len(b) > 16 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	if v < MinTimestamp || v > MaxTimestamp {
		return 0, false
	}
	return v, true
}

// parseRFC3339 parses YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|±HH:MM) into epoch
// milliseconds, truncating the fraction toward the earlier millisecond.
func parseRFC3339[S string | []byte](s S) (int64, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits2(s[5], s[6])
	day, ok3 := digits2(s[8], s[9])
	hour, ok4 := digits2(s[11], s[12])
	minute, ok5 := digits2(s[14], s[15])
	sec, ok6 := digits2(s[17], s[18])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := s[19:]
	var milli int64
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return 0, false
		}
		for k := 1; k <= 3; k++ {
			milli *= 10
			if k < n {
				milli += int64(rest[k] - '0')
			}
		}
		rest = rest[n:]
	}
	var offset int64 // seconds east of UTC
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits2(rest[1], rest[2])
		om, ok2 := digits2(rest[4], rest[5])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + hour*3600 + minute*60 + sec - offset
	ms := secs*1000 + milli
	if ms < MinTimestamp || ms > MaxTimestamp {
		return 0, false
	}
	return ms, true
}

// digits parses a short run of ASCII digits.
func digits[S string | []byte](s S) (int64, bool) {
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// digits2 parses two ASCII digits.
func digits2(a, b byte) (int64, bool) {
	a -= '0'
	b -= '0'
	return int64(a)*10 + int64(b), a <= 9 && b <= 9
}

// daysIn returns the number of days in a month of a proleptic Gregorian
// year.
func daysIn(month, year int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
