package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// routeMissing reports a 404 for a route the deployment does not have (an
// older deployment), as opposed to a missing run.
func routeMissing(err error) bool {
	var ae *APIError
	return asAPIError(err, &ae) && ae.Status == http.StatusNotFound && (ae.Code == "" || strings.HasPrefix(ae.Message, "no route for"))
}

func (a *app) logsCommand() *cobra.Command {
	var follow, timestamps bool
	var download string
	cmd := &cobra.Command{
		Use:   "logs RUN_ID",
		Short: "Print a run's console log, follow it live, or download its nextflow.log",
		Long: `Print a run's console log from its start. With -f, keep following it live
(through the deployment's log-follow URL, signed for service lambda) until
the run ends. With --download FILE, save the run's nextflow.log (uploaded
when the run ends) to FILE ("-": standard output).`,
		Example: `  ceforge logs RUN_ID
  ceforge logs -f RUN_ID
  ceforge logs RUN_ID --download nextflow.log`,
		Args: oneArg("run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			id := args[0]
			if download != "" {
				return a.download(ctx, c, id, download)
			}
			print := func(ts time.Time, msg string) {
				if timestamps {
					fmt.Fprintf(a.io.Out, "%s %s\n", ts.UTC().Format(time.RFC3339Nano), msg)
					return
				}
				fmt.Fprintln(a.io.Out, msg)
			}
			if follow {
				return a.follow(ctx, c, id, print)
			}
			cursor := ""
			for {
				q := url.Values{"limit": {"1000"}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				var pg logPage
				if err := c.Do(ctx, http.MethodGet, "/runs/"+url.PathEscape(id)+"/logs", q, nil, &pg); err != nil {
					return err
				}
				for _, l := range pg.Lines {
					print(l.Timestamp, l.Message)
				}
				if len(pg.Lines) == 0 || pg.NextCursor == "" || pg.NextCursor == cursor {
					return nil
				}
				cursor = pg.NextCursor
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the run ends")
	cmd.Flags().BoolVar(&timestamps, "timestamps", false, "prefix each line with its time")
	cmd.Flags().StringVar(&download, "download", "", "save the run's nextflow.log to FILE (\"-\": standard output)")
	return cmd
}

// follow prints the run's lines as they arrive, reconnecting from the last
// cursor when a stream reaches its time bound, until the run ends.
func (a *app) follow(ctx context.Context, c *Client, id string, print func(time.Time, string)) error {
	cursor := ""
	for attempt := 0; ; attempt++ {
		ended := false
		err := c.Follow(ctx, id, cursor, func(ev Event) error {
			if ev.ID != "" {
				cursor = ev.ID
			}
			switch ev.Name {
			case "line":
				var l struct {
					Timestamp time.Time `json:"timestamp"`
					Message   string    `json:"message"`
				}
				if err := json.Unmarshal(ev.Data, &l); err != nil {
					return fmt.Errorf("decode log line: %w", err)
				}
				print(l.Timestamp, l.Message)
			case "status":
				var s struct{ Status string }
				if json.Unmarshal(ev.Data, &s) == nil && s.Status != "" && !a.quiet {
					fmt.Fprintf(a.io.Err, "[run %s is %s]\n", id, s.Status)
				}
			case "end":
				var e struct {
					Reason, Status, NextCursor, Message string
				}
				if err := json.Unmarshal(ev.Data, &e); err != nil {
					return fmt.Errorf("decode end of stream: %w", err)
				}
				if e.NextCursor != "" {
					cursor = e.NextCursor
				}
				switch e.Reason {
				case "run_ended":
					ended = true
				case "error":
					return fmt.Errorf("log stream of run %s ended with an error: %s", id, e.Message)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if ended {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Time bound (or the connection closed): go on from the cursor.
		if err := a.sleep(ctx, time.Duration(min(attempt, 5))*time.Second/2); err != nil {
			return err
		}
	}
}

// download saves the run's nextflow.log: the API answers with a redirect to
// a short-lived presigned URL, fetched without the SigV4 signature.
func (a *app) download(ctx context.Context, c *Client, id, dest string) error {
	req, err := c.request(ctx, serviceAPI, http.MethodGet, "/runs/"+url.PathEscape(id)+"/logs/download", nil, nil, nil)
	if err != nil {
		return err
	}
	noFollow := &http.Client{Transport: c.HTTP.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Do(req)
	if err != nil {
		return fmt.Errorf("download the log of run %s: %w", id, err)
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode/100 != 3 || loc == "" {
		if res.StatusCode/100 == 2 {
			return errors.New("the API answered without a download location")
		}
		return decodeError(res, b)
	}
	get, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return fmt.Errorf("download URL: %w", err)
	}
	res, err = c.HTTP.Do(get)
	if err != nil {
		return fmt.Errorf("download nextflow.log of run %s: %w", id, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("download nextflow.log of run %s: %s", id, res.Status)
	}
	var w io.Writer = a.io.Out
	if dest != "-" {
		f, err := os.Create(dest)
		if err != nil {
			return usagef("create %s: %v", dest, err)
		}
		defer f.Close()
		w = f
	}
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return fmt.Errorf("download nextflow.log of run %s: %w", id, err)
	}
	if dest != "-" && !a.quiet {
		fmt.Fprintf(a.io.Err, "saved %s (%d bytes)\n", dest, n)
	}
	return nil
}
