package benchcompare

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The chart is drawn with the standard library and basicfont alone: a
// plotting library would be a large dependency for a few lines and text.

var (
	seriesMu sync.Mutex
	series   []Series
)

// Series is one contender's latencies in one panel of the chart.
type Series struct {
	Panel, Name string
	Latencies   []time.Duration // sorted
}

// AddSeries records a latency distribution (sorted, as Sample.Latencies
// is) for the chart; panel is e.g. "sidecar, 16 conns". A name keeps its
// colour in every panel.
func AddSeries(panel, name string, lat []time.Duration) {
	if !slices.IsSorted(lat) {
		lat = slices.Clone(lat)
		slices.Sort(lat)
	}
	seriesMu.Lock()
	defer seriesMu.Unlock()
	series = append(series, Series{Panel: panel, Name: name, Latencies: lat})
}

// recordedSeries is what AddSeries has recorded so far.
func recordedSeries() []Series {
	seriesMu.Lock()
	defer seriesMu.Unlock()
	return slices.Clone(series)
}

// ErrNoSeries is returned when there is nothing to draw.
var ErrNoSeries = errors.New("benchcompare: no latency series to draw")

// Chart geometry: panels of panelW×panelH, at most chartColumns a row.
const (
	panelW, panelH = 560, 420
	chartColumns   = 3
	marginL        = 72
	marginR        = 26
	marginT        = 28
	marginB        = 44
	// maxNines is the right end of the percentile axis: p99.9.
	maxNines = 3.0
)

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	colMinorGrid  = color.RGBA{242, 242, 242, 255}
	colAxis       = color.RGBA{40, 40, 40, 255}
	// palette holds the series colours, none equal to the colours above.
	palette = []color.RGBA{
		{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {23, 190, 207, 255},
		{188, 189, 34, 255}, {127, 127, 127, 255},
	}
)

// RenderChart draws one panel per distinct Series.Panel (in the order of
// first appearance): percentile curves, the x axis in "nines" (p0, p90,
// p99, p99.9 evenly spaced, as HdrHistogram plots do, so the tail gets
// room) and the latency axis in decades (log scale), with a legend.
func RenderChart(ss []Series) (*image.RGBA, error) {
	var panels []string
	colours := map[string]color.RGBA{}
	for _, s := range ss {
		if len(s.Latencies) == 0 {
			continue
		}
		if !slices.Contains(panels, s.Panel) {
			panels = append(panels, s.Panel)
		}
		if _, ok := colours[s.Name]; !ok {
			colours[s.Name] = palette[len(colours)%len(palette)]
		}
	}
	if len(panels) == 0 {
		return nil, ErrNoSeries
	}
	cols := min(len(panels), chartColumns)
	rows := (len(panels) + cols - 1) / cols
	img := image.NewRGBA(image.Rect(0, 0, cols*panelW, rows*panelH))
	draw.Draw(img, img.Bounds(), image.NewUniform(colBackground), image.Point{}, draw.Src)
	for i, p := range panels {
		var in []Series
		for _, s := range ss {
			if s.Panel == p && len(s.Latencies) > 0 {
				in = append(in, s)
			}
		}
		origin := image.Pt((i%cols)*panelW, (i/cols)*panelH)
		drawPanel(img, image.Rectangle{Min: origin, Max: origin.Add(image.Pt(panelW, panelH))}, p, in, colours)
	}
	return img, nil
}

// WriteChart renders the recorded series into a PNG file at path.
func WriteChart(path string) error {
	img, err := RenderChart(recordedSeries())
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plotArea maps percentiles and latencies of one panel to pixels.
type plotArea struct {
	r      image.Rectangle // the plot itself, inside the panel's margins
	lo, hi float64         // log10 of the latency axis' ends, in ns
}

func (a plotArea) x(nines float64) int {
	return a.r.Min.X + int(nines/maxNines*float64(a.r.Dx()-1)+0.5)
}

func (a plotArea) y(d time.Duration) int {
	v := math.Log10(math.Max(float64(d), 1))
	return a.r.Max.Y - 1 - int((v-a.lo)/(a.hi-a.lo)*float64(a.r.Dy()-1)+0.5)
}

func drawPanel(img *image.RGBA, box image.Rectangle, title string, in []Series, colours map[string]color.RGBA) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range in {
		lo = math.Min(lo, math.Log10(math.Max(float64(s.Latencies[0]), 1)))
		hi = math.Max(hi, math.Log10(math.Max(float64(s.Latencies[len(s.Latencies)-1]), 1)))
	}
	a := plotArea{r: image.Rect(box.Min.X+marginL, box.Min.Y+marginT, box.Max.X-marginR, box.Max.Y-marginB),
		lo: math.Floor(lo), hi: math.Ceil(hi)}
	if a.hi <= a.lo {
		a.hi = a.lo + 1
	}
	drawGrid(img, a)
	label(img, box.Min.X+marginL, box.Min.Y+18, colAxis, title+": latency by percentile")
	for _, s := range in {
		drawCurve(img, a, s.Latencies, colours[s.Name])
	}
	drawLegend(img, a, in, colours)
}

func drawGrid(img *image.RGBA, a plotArea) {
	for dec := a.lo; dec <= a.hi; dec++ {
		for _, m := range []float64{1, 2, 5} {
			v := dec + math.Log10(m)
			if v > a.hi {
				break
			}
			d := time.Duration(math.Pow(10, v) + 0.5)
			y := a.y(d)
			c := colMinorGrid
			if m == 1 {
				c = colGrid
				label(img, a.r.Min.X-8-7*len(formatAxisDur(d)), y+4, colAxis, formatAxisDur(d))
			}
			hline(img, a.r.Min.X, a.r.Max.X, y, c)
		}
	}
	for _, t := range []struct {
		nines float64
		name  string
	}{{0, "p0"}, {math.Log10(2), "p50"}, {1, "p90"}, {2, "p99"}, {3, "p99.9"}} {
		x := a.x(t.nines)
		vline(img, x, a.r.Min.Y, a.r.Max.Y, colGrid)
		label(img, x-7*len(t.name)/2, a.r.Max.Y+16, colAxis, t.name)
	}
	hline(img, a.r.Min.X, a.r.Max.X, a.r.Max.Y-1, colAxis)
	vline(img, a.r.Min.X, a.r.Min.Y, a.r.Max.Y, colAxis)
	label(img, a.r.Min.X+a.r.Dx()/2-35, a.r.Max.Y+34, colAxis, "percentile")
}

// drawCurve plots lat's quantiles at evenly spaced "nines", joined.
func drawCurve(img *image.RGBA, a plotArea, lat []time.Duration, c color.RGBA) {
	const steps = 300
	px, py := -1, -1
	for k := 0; k <= steps; k++ {
		nines := maxNines * float64(k) / steps
		q := 1 - math.Pow(10, -nines)
		d := lat[min(int(q*float64(len(lat))), len(lat)-1)]
		x, y := a.x(nines), a.y(d)
		if px >= 0 {
			line(img, px, py, x, y, c)
		}
		px, py = x, y
	}
}

func drawLegend(img *image.RGBA, a plotArea, in []Series, colours map[string]color.RGBA) {
	w := 0
	for _, s := range in {
		w = max(w, len(s.Name))
	}
	// Bottom right: percentile curves rise to the right, so that corner
	// is the one they leave free.
	bw, bh := 7*w+34, 16*len(in)+6
	box := image.Rect(a.r.Max.X-8-bw, a.r.Max.Y-8-bh, a.r.Max.X-8, a.r.Max.Y-8)
	draw.Draw(img, box, image.NewUniform(colBackground), image.Point{}, draw.Src)
	for i, s := range in {
		y := box.Min.Y + 14 + 16*i
		c := colours[s.Name]
		draw.Draw(img, image.Rect(box.Min.X+4, y-7, box.Min.X+22, y-3), image.NewUniform(c), image.Point{}, draw.Src)
		label(img, box.Min.X+28, y, colAxis, s.Name)
	}
}

func label(img *image.RGBA, x, y int, c color.RGBA, s string) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x < x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y < y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

// line draws a 2-pixel-wide segment (DDA: enough for a chart).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		x := x0 + (x1-x0)*i/n
		y := y0 + (y1-y0)*i/n
		img.SetRGBA(x, y, c)
		img.SetRGBA(x+1, y, c)
		img.SetRGBA(x, y+1, c)
		img.SetRGBA(x+1, y+1, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// formatAxisDur is a decade's label: "100us", "1ms", "10s".
func formatAxisDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%dus", d.Microseconds()) // basicfont is ASCII only
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%ds", int64(d.Seconds()))
	}
}
