package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	ceibaColor  = color.RGBA{R: 0x1b, G: 0x7f, B: 0x3b, A: 0xff} // a ceiba's green
	bareColor   = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	targetColor = color.RGBA{R: 0xc0, G: 0x20, B: 0x20, A: 0xff}
	otherColor  = color.RGBA{R: 0x1f, G: 0x5f, B: 0xaf, A: 0xff}
	dashed      = []vg.Length{vg.Points(5), vg.Points(3)}
	dotted      = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
)

// plots writes every PNG the report links to, for the results present.
func plots(res *Results, rows []gossipRow, out string) error {
	type job struct {
		file string
		draw func() (*vgimg.Canvas, error)
	}
	jobs := []job{
		{"propagation.png", func() (*vgimg.Canvas, error) { return gossipPlot(rows, "publish", "Publish → searchable") }},
		{"revocation.png", func() (*vgimg.Canvas, error) { return gossipPlot(rows, "revoke", "Revocation enforced") }},
		{"revocation-cosigned.png", func() (*vgimg.Canvas, error) {
			return gossipPlot(rows, "revoke-cosigned", "Revocation carrying the quorum's signatures, enforced")
		}},
		{"ratio.png", func() (*vgimg.Canvas, error) { return ratioPlot(rows) }},
		{"catchup.png", func() (*vgimg.Canvas, error) { return catchUpPlot(res) }},
		{"ingest.png", func() (*vgimg.Canvas, error) { return ingestPlot(res) }},
		{"search.png", func() (*vgimg.Canvas, error) { return searchPlot(res) }},
		{"memory.png", func() (*vgimg.Canvas, error) { return memoryPlot(res) }},
	}
	for _, j := range jobs {
		c, err := j.draw()
		if err != nil {
			return fmt.Errorf("%s: %w", j.file, err)
		}
		if c == nil {
			continue // nothing measured for it
		}
		f, err := os.Create(filepath.Join(out, j.file))
		if err != nil {
			return err
		}
		_, err = vgimg.PngCanvas{Canvas: c}.WriteTo(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text, p.Y.Label.Text = x, y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

func logX(p *plot.Plot) {
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{}
}

func logY(p *plot.Plot) {
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
}

// logTicks labels 1, 2 and 5 of every decade: plot.LogTicks labels powers
// of ten only, which leaves a range within one decade unlabelled.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, e)
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = tickLabel(v)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

func tickLabel(v float64) string {
	if v >= 1 {
		return thousands(v)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

// line adds a line with points; values that a log axis cannot show are
// left out.
func line(p *plot.Plot, name string, xys plotter.XYs, c color.Color, dash []vg.Length, shape draw.GlyphDrawer) error {
	var keep plotter.XYs
	for _, xy := range xys {
		if xy.X > 0 && xy.Y > 0 && !math.IsNaN(xy.Y) && !math.IsInf(xy.Y, 0) {
			keep = append(keep, xy)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(keep)
	if err != nil {
		return err
	}
	l.Color, l.Dashes, l.Width = c, dash, vg.Points(1.8)
	s.Color, s.Shape, s.Radius = c, shape, vg.Points(3)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

// hline is a target: a horizontal line across [x0, x1].
func hline(p *plot.Plot, name string, y, x0, x1 float64) error {
	l, err := plotter.NewLine(plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}})
	if err != nil {
		return err
	}
	l.Color, l.Dashes, l.Width = targetColor, dashed, vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func tiles(ps []*plot.Plot, width, height vg.Length) *vgimg.Canvas {
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	t := draw.Tiles{Rows: 1, Cols: len(ps), PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 2,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 3}
	canvases := plot.Align([][]*plot.Plot{ps}, t, dc)
	for i, p := range ps {
		p.Draw(canvases[0][i])
	}
	return img
}

func single(p *plot.Plot, width, height vg.Length) *vgimg.Canvas {
	return tiles([]*plot.Plot{p}, width, height)
}

// gossipPlot: one panel per link latency, sparse and loss-free networks,
// time to reach 50% and 99% of the nodes against N, Ceiba and bare.
func gossipPlot(rows []gossipRow, kind, title string) (*vgimg.Canvas, error) {
	var ps []*plot.Plot
	for _, lat := range []int{0, 20} {
		var c50, c99, b50, b99 plotter.XYs
		for _, r := range rows {
			if r.kind != kind || r.latency != lat || r.topo != "sparse" || r.loss != "0%" || r.b.Runs == 0 {
				continue
			}
			x := float64(r.n)
			c50 = append(c50, plotter.XY{X: x, Y: med(r.b, "ceiba-p50-ms")})
			c99 = append(c99, plotter.XY{X: x, Y: med(r.b, "ceiba-p99-ms")})
			b50 = append(b50, plotter.XY{X: x, Y: med(r.b, "bare-p50-ms")})
			b99 = append(b99, plotter.XY{X: x, Y: med(r.b, "bare-p99-ms")})
		}
		if len(c99) == 0 {
			continue
		}
		p := newPlot(fmt.Sprintf("%s, %d ms links", title, lat), "nodes (N)", "ms after publish")
		logX(p)
		logY(p)
		p.X.Min, p.X.Max = 7, 1400
		for _, s := range []struct {
			name string
			xys  plotter.XYs
			c    color.Color
			d    []vg.Length
			g    draw.GlyphDrawer
		}{
			{"Ceiba, 99% of nodes", c99, ceibaColor, nil, draw.CircleGlyph{}},
			{"Ceiba, 50%", c50, ceibaColor, dashed, draw.CircleGlyph{}},
			{"bare GossipSub, 99%", b99, bareColor, nil, draw.SquareGlyph{}},
			{"bare GossipSub, 50%", b50, bareColor, dashed, draw.SquareGlyph{}},
		} {
			if err := line(p, s.name, s.xys, s.c, s.d, s.g); err != nil {
				return nil, err
			}
		}
		p.Legend.Top, p.Legend.Left = false, false
		padLog(p, c50, c99, b50, b99)
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, nil
	}
	return tiles(ps, vg.Points(420*float64(len(ps))), vg.Points(340)), nil
}

func ratioPlot(rows []gossipRow) (*vgimg.Canvas, error) {
	p := newPlot("Ceiba / bare GossipSub, time to 99% of nodes", "nodes (N)", "ratio")
	logX(p)
	any := false
	for _, kind := range []string{"publish", "revoke", "revoke-cosigned"} {
		for _, lat := range []int{0, 20} {
			var xys plotter.XYs
			for _, r := range rows {
				if r.kind == kind && r.latency == lat && r.topo == "sparse" && r.loss == "0%" && r.b.Runs > 0 {
					xys = append(xys, plotter.XY{X: float64(r.n), Y: med(r.b, "ratio-p99")})
				}
			}
			if len(xys) == 0 {
				continue
			}
			any = true
			c, g := ceibaColor, draw.GlyphDrawer(draw.CircleGlyph{})
			switch kind {
			case "revoke":
				c, g = otherColor, draw.TriangleGlyph{}
			case "revoke-cosigned":
				c, g = bareColor, draw.SquareGlyph{}
			}
			var d []vg.Length
			if lat == 20 {
				d = dashed
			}
			if err := line(p, fmt.Sprintf("%s, %d ms links", kind, lat), xys, c, d, g); err != nil {
				return nil, err
			}
		}
	}
	if !any {
		return nil, nil
	}
	if err := hline(p, "target ≤ 1.25", 1.25, 10, 1000); err != nil {
		return nil, err
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Y.Min = 0
	p.Y.Max = max(p.Y.Max*1.05, 1.5)
	var ticks []plot.Tick
	for v := 0.0; v <= p.Y.Max; v += 0.25 {
		t := plot.Tick{Value: v}
		if math.Mod(v, 0.5) == 0 || v == 1.25 {
			t.Label = strconv.FormatFloat(v, 'f', -1, 64)
		}
		ticks = append(ticks, t)
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = 7, 1400
	return single(p, vg.Points(520), vg.Points(360)), nil
}

func catchUpPlot(res *Results) (*vgimg.Canvas, error) {
	p := newPlot("Catch-up after being offline", "updates missed", "ms from reconnecting to converged")
	logX(p)
	logY(p)
	any := false
	for _, v := range []struct {
		via, neighbours, name string
		c                     color.Color
		d                     []vg.Length
		g                     draw.GlyphDrawer
	}{
		{"sync", "all", "sync alone, all neighbours", ceibaColor, nil, draw.CircleGlyph{}},
		{"sync", "1", "sync alone, one neighbour", ceibaColor, dashed, draw.CircleGlyph{}},
		{"dht", "all", "DHT alone", otherColor, nil, draw.TriangleGlyph{}},
	} {
		var xys plotter.XYs
		for _, u := range []int{1000, 10000} {
			if b := res.Find(fmt.Sprintf("BenchmarkCatchUp/via=%s/updates=%d/neighbours=%s", v.via, u, v.neighbours)); b != nil && b.Runs > 0 {
				xys = append(xys, plotter.XY{X: float64(u), Y: med(b, "catchup-ms")})
			}
		}
		if len(xys) == 0 {
			continue
		}
		any = true
		if err := line(p, v.name, xys, v.c, v.d, v.g); err != nil {
			return nil, err
		}
	}
	if !any {
		return nil, nil
	}
	s, err := plotter.NewScatter(plotter.XYs{{X: 10000, Y: 2000}})
	if err != nil {
		return nil, err
	}
	s.Color, s.Shape, s.Radius = targetColor, draw.CrossGlyph{}, vg.Points(6)
	p.Add(s)
	p.Legend.Add("target: 10,000 via sync < 2 s", s)
	p.X.Min, p.X.Max = 700, 14000
	return single(p, vg.Points(520), vg.Points(360)), nil
}

// bars draws one horizontal bar per label.
func bars(title, unit string, labels []string, values []float64, colors []color.Color) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = unit
	p.Add(plotter.NewGrid())
	for i, v := range values {
		vs := make(plotter.Values, len(values))
		vs[i] = v
		b, err := plotter.NewBarChart(vs, vg.Points(22))
		if err != nil {
			return nil, err
		}
		b.Horizontal = true
		b.Color = colors[i%len(colors)]
		b.LineStyle.Width = 0
		p.Add(b)
	}
	p.NominalY(labels...)
	p.Y.Min, p.Y.Max = -0.7, float64(len(values))-0.3
	p.X.Min = 0
	var xys []plotter.XY
	var texts []string
	for i, v := range values {
		p.X.Max = max(p.X.Max, v*1.18)
		xys = append(xys, plotter.XY{X: v, Y: float64(i)})
		texts = append(texts, " "+num(v))
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].YAlign = draw.YCenter
	}
	p.Add(l)
	return p, nil
}

func ingestPlot(res *Results) (*vgimg.Canvas, error) {
	var labels []string
	var values []float64
	var colors []color.Color
	for _, r := range []struct{ name, label, unit string }{
		{"BenchmarkEd25519Verify", "raw Ed25519 verify", "verifies/s"},
		{"BenchmarkOpenVerify", "open + decode + verify", "records/s"},
		{"BenchmarkIngest/verify=twice", "ingest, verifying twice", "records/s"},
		{"BenchmarkIngest/verify=once", "ingest (open … apply)", "records/s"},
	} {
		v := med(res.Find(r.name), r.unit)
		if math.IsNaN(v) {
			continue
		}
		labels, values = append(labels, r.label), append(values, v/1000)
		c := color.Color(ceibaColor)
		if strings.HasPrefix(r.label, "raw") {
			c = bareColor
		}
		colors = append(colors, c)
	}
	if len(values) == 0 {
		return nil, nil
	}
	p, err := bars("Records per second, one core", "thousands per second", labels, values, colors)
	if err != nil {
		return nil, err
	}
	if v := med(res.Find("BenchmarkEd25519Verify"), "verifies/s"); !math.IsNaN(v) {
		l, err := plotter.NewLine(plotter.XYs{{X: v / 2000, Y: -0.5}, {X: v / 2000, Y: float64(len(values)) - 0.5}})
		if err != nil {
			return nil, err
		}
		l.Color, l.Dashes, l.Width = targetColor, dashed, vg.Points(1.5)
		p.Add(l)
		p.Legend.Add("target: half the raw verify rate", l)
		p.Legend.Top = true
	}
	return single(p, vg.Points(560), vg.Points(260)), nil
}

func searchPlot(res *Results) (*vgimg.Canvas, error) {
	p := newPlot("Search latency", "entries in the index", "µs per query")
	logX(p)
	logY(p)
	var p50, p99 plotter.XYs
	for _, n := range []int{1000, 10000, 100000} {
		if b := res.Find(fmt.Sprintf("BenchmarkSearch/n=%d", n)); b != nil && b.Runs > 0 {
			p50 = append(p50, plotter.XY{X: float64(n), Y: med(b, "p50-µs")})
			p99 = append(p99, plotter.XY{X: float64(n), Y: med(b, "p99-µs")})
		}
	}
	if len(p99) == 0 {
		return nil, nil
	}
	if err := line(p, "p99", p99, ceibaColor, nil, draw.CircleGlyph{}); err != nil {
		return nil, err
	}
	if err := line(p, "p50", p50, ceibaColor, dashed, draw.CircleGlyph{}); err != nil {
		return nil, err
	}
	if err := hline(p, "target: p99 < 5 ms at 100,000", 5000, 1000, 100000); err != nil {
		return nil, err
	}
	p.Legend.Top, p.Legend.Left = false, false
	padLog(p, p50, p99, plotter.XYs{{X: 1000, Y: 5000}})
	return single(p, vg.Points(520), vg.Points(360)), nil
}

func memoryPlot(res *Results) (*vgimg.Canvas, error) {
	var labels []string
	var values []float64
	var colors []color.Color
	for _, n := range []int{10000, 100000} {
		b := res.Find(fmt.Sprintf("BenchmarkDaemonRSS/entries=%d", n))
		if b == nil || b.Runs == 0 {
			continue
		}
		labels = append(labels, fmt.Sprintf("%s entries, after restart", thousands(float64(n))), fmt.Sprintf("%s entries, after import", thousands(float64(n))))
		values = append(values, med(b, "rss-MiB"), med(b, "rss-filled-MiB"))
		colors = append(colors, ceibaColor, bareColor)
	}
	if len(values) == 0 {
		return nil, nil
	}
	p, err := bars("Resident memory of one ceiba daemon", "MiB (VmRSS)", labels, values, colors)
	if err != nil {
		return nil, err
	}
	return single(p, vg.Points(560), vg.Points(240)), nil
}

// padLog widens a log Y axis by a quarter of a decade each way around the
// data, so points do not sit on the frame and the legend has room.
func padLog(p *plot.Plot, series ...plotter.XYs) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, xys := range series {
		for _, xy := range xys {
			if xy.Y > 0 && !math.IsNaN(xy.Y) {
				lo, hi = min(lo, xy.Y), max(hi, xy.Y)
			}
		}
	}
	if lo <= hi {
		p.Y.Min, p.Y.Max = lo/1.8, hi*1.5
	}
}
