package api

import (
	"net/url"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// registerTemplate, registerIso, updateTemplate, updateIso, deleteTemplate
// and deleteIso.
//
// Registering records the image and one copy per zone, not downloaded and
// not ready (DownloadNotDownloaded): fetching the image onto secondary
// storage is the storage work's, which will move each copy to
// DownloadDownloaded and set IsReady and the sizes. Until then the
// filters that only show images ready to deploy (executable, featured,
// community, selfexecutable) leave new images out, as CloudStack does while
// a download runs; self and all show them.

// templateFormats are the disk image formats KVM templates may have.
var templateFormats = []string{"QCOW2", "RAW", "VHD", "VMDK"}

// checksumHexLen is the hex length of each checksum algorithm CloudStack
// accepts as a {ALGO} prefix; an unprefixed checksum is MD5.
var checksumHexLen = map[string]int{"MD5": 32, "SHA-1": 40, "SHA-224": 56, "SHA-256": 64, "SHA-384": 96, "SHA-512": 128}

// imageURL checks the url parameter: an absolute http or https URL with a
// host.
func imageURL(p Params) (string, *Error) {
	raw := strings.TrimSpace(p.String("url"))
	u, err := url.Parse(raw)
	if err != nil || (!strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https")) || u.Host == "" {
		return "", ErrParam("invalid value for parameter url: give an http:// or https:// address of the image, e.g. https://images.example/ubuntu.qcow2")
	}
	return raw, nil
}

// imageChecksum checks the checksum parameter: hex digits of the length
// of its algorithm, given as a {ALGO} prefix or MD5 without one.
func imageChecksum(p Params) (string, *Error) {
	v := strings.TrimSpace(p.String("checksum"))
	if v == "" {
		return "", nil
	}
	algo, hex := "MD5", v
	if strings.HasPrefix(v, "{") {
		end := strings.IndexByte(v, '}')
		if end < 0 {
			return "", ErrParam("invalid value %q for parameter checksum: close the algorithm as in {SHA-256}", v)
		}
		algo, hex = strings.ToUpper(v[1:end]), v[end+1:]
	}
	n, ok := checksumHexLen[algo]
	if !ok {
		return "", ErrParam("invalid value %q for parameter checksum: the algorithm must be MD5, SHA-1, SHA-224, SHA-256, SHA-384 or SHA-512", v)
	}
	if len(hex) != n || strings.Trim(strings.ToLower(hex), "0123456789abcdef") != "" {
		return "", ErrParam("invalid value %q for parameter checksum: a %s checksum is %d hex digits", v, algo, n)
	}
	return v, nil
}

// imageOSType reads ostypeid: a built-in OS type, or def when absent.
func imageOSType(p Params, def string) (string, *Error) {
	raw := strings.TrimSpace(p.String("ostypeid"))
	if raw == "" {
		return def, nil
	}
	os, ok := fsm.OSTypeByID(strings.ToLower(raw))
	if !ok {
		return "", ErrEntityNotFound(p.Cmd, "ostypeid", raw)
	}
	return os.ID, nil
}

// imageZones reads where a new image goes: zoneid (-1 for every zone) or
// zoneids. It answers the zone IDs, or cross for every zone. Accounts
// other than the root admin may not register into a disabled zone.
func imageZones(r *Request) (zoneIDs []string, cross bool, e *Error) {
	p := r.Params
	type zoneArg struct{ param, value string }
	var values []zoneArg
	if v := strings.TrimSpace(p.String("zoneid")); v != "" {
		values = append(values, zoneArg{"zoneid", v})
	}
	for _, v := range p.List("zoneids") {
		values = append(values, zoneArg{"zoneids", v})
	}
	switch {
	case len(values) == 0:
		return nil, false, ErrParam("parameter zoneid or zoneids is required: name the zones of the image, or give zoneid=-1 for every zone")
	case catalogGiven(p, "zoneid") && len(p.List("zoneids")) > 0:
		return nil, false, ErrParam("give zoneid or zoneids, not both")
	}
	for _, v := range values {
		if v.value == "-1" {
			return nil, true, nil
		}
	}
	for _, v := range values {
		if !IsUUID(v.value) {
			return nil, false, ErrEntityNotFound(p.Cmd, v.param, v.value)
		}
		z, _ := r.State().Zone(nil, strings.ToLower(v.value))
		if z == nil {
			return nil, false, ErrEntityNotFound(p.Cmd, v.param, v.value)
		}
		if z.AllocationState == fsm.AllocationDisabled && !r.isRootAdmin() {
			return nil, false, ErrPermissionDenied("zone " + z.Name + " is disabled: only the root admin can register images in it now")
		}
		if !catalogContainsFold(zoneIDs, z.ID) {
			zoneIDs = append(zoneIDs, z.ID)
		}
	}
	return zoneIDs, false, nil
}

// newImage reads the parameters templates and ISOs share.
func newImage(r *Request, kind string) (*fsm.Template, *Error) {
	p := r.Params
	t := &fsm.Template{ID: newID(), Kind: kind, TemplateType: fsm.TemplateTypeUser, Created: r.srv.now().UTC()}
	var e *Error
	if t.Name, e = catalogName(p, "name"); e != nil {
		return nil, e
	}
	if t.DisplayText, e = catalogName(p, "displaytext"); e != nil {
		return nil, e
	}
	if t.URL, e = imageURL(p); e != nil {
		return nil, e
	}
	if t.Checksum, e = imageChecksum(p); e != nil {
		return nil, e
	}
	for _, b := range []struct {
		param string
		def   bool
		dst   *bool
	}{
		{"ispublic", false, &t.IsPublic}, {"isfeatured", false, &t.IsFeatured}, {"isextractable", false, &t.IsExtractable},
		{"passwordenabled", false, &t.PasswordEnabled}, {"isdynamicallyscalable", false, &t.IsDynamicallyScalable},
		{"directdownload", false, &t.DirectDownload}, {"sshkeyenabled", false, &t.SSHKeyEnabled},
		{"requireshvm", kind == fsm.ImageKindTemplate, &t.RequiresHVM}, {"bootable", true, &t.Bootable},
	} {
		if *b.dst, e = p.Bool(b.param, b.def); e != nil {
			return nil, e
		}
	}
	if t.IsFeatured && !r.isRootAdmin() {
		return nil, ErrPermissionDenied("only the root admin may mark an image featured; leave isfeatured out")
	}
	if t.AccountID, t.DomainID, e = r.owner(); e != nil {
		return nil, e
	}
	return t, nil
}

// registerImage commits a new image with a copy per zone (or one
// cross-zone copy) and answers them as a list, as CloudStack does.
func registerImage(r *Request, t *fsm.Template, zoneIDs []string, cross bool, item, evType string) (any, *Error) {
	t.CrossZones = cross
	ops := []fsm.TxnOp{fsm.Create(fsm.TableTemplates, t)}
	if cross {
		zoneIDs = []string{""}
	}
	for _, z := range zoneIDs {
		ops = append(ops, fsm.Create(fsm.TableTemplateZones, &fsm.TemplateZone{ID: newID(), TemplateID: t.ID, ZoneID: z,
			DownloadState: fsm.DownloadNotDownloaded, Created: t.Created}))
	}
	ops = append(ops, r.event(evType, imageResource(t.Kind), t.ID, "registered %s %s", imageNoun(t.Kind), t.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	stored, err := fsm.Get[fsm.Template](r.State(), nil, fsm.TableTemplates, t.ID)
	if err != nil || stored == nil {
		return nil, ErrInternal(imageNoun(t.Kind) + " " + t.ID + " was committed but cannot be read back")
	}
	l, e := newImageLister(r)
	if e != nil {
		return nil, e
	}
	out := []templateResponse{}
	for _, c := range l.copies(stored) {
		out = append(out, l.render(stored, c))
	}
	return ListBody(item, len(out), out), nil
}

func imageResource(kind string) string {
	if kind == fsm.ImageKindISO {
		return resISO
	}
	return resTemplate
}

func registerTemplate(r *Request) (any, *Error) {
	p := r.Params
	t, e := newImage(r, fsm.ImageKindTemplate)
	if e != nil {
		return nil, e
	}
	t.Bootable = true
	if t.Format, e = catalogChoice(p, "format", "", templateFormats...); e != nil {
		return nil, e
	}
	if t.Hypervisor, e = catalogChoice(p, "hypervisor", "", "KVM"); e != nil {
		return nil, e
	}
	if t.OSTypeID, e = imageOSType(p, fsm.OSTypeOtherLinux64); e != nil {
		return nil, e
	}
	if t.Bits, e = p.Int("bits", 64); e != nil {
		return nil, e
	}
	if t.Bits != 32 && t.Bits != 64 {
		return nil, ErrParam("invalid value %d for parameter bits: use 32 or 64", t.Bits)
	}
	t.TemplateTag = strings.TrimSpace(p.String("templatetag"))
	t.Details = detailsParam(p, "details")
	zones, cross, e := imageZones(r)
	if e != nil {
		return nil, e
	}
	return registerImage(r, t, zones, cross, "template", "TEMPLATE.CREATE")
}

func registerIso(r *Request) (any, *Error) {
	p := r.Params
	t, e := newImage(r, fsm.ImageKindISO)
	if e != nil {
		return nil, e
	}
	t.Format = "ISO"
	if t.Bootable && !catalogGiven(p, "ostypeid") {
		return nil, ErrParam("parameter ostypeid is required for a bootable ISO: give the OS it installs (see listOsTypes), or bootable=false")
	}
	if t.OSTypeID, e = imageOSType(p, fsm.OSTypeOtherLinux64); e != nil {
		return nil, e
	}
	zones, cross, e := imageZones(r)
	if e != nil {
		return nil, e
	}
	return registerImage(r, t, zones, cross, "iso", "ISO.CREATE")
}

// imageForChange resolves the id parameter to an image of kind that the
// caller may change: one it cannot see does not exist; one it sees but
// does not own (a public image) is a permission error.
func imageForChange(r *Request, kind string) (*fsm.Template, *Error) {
	t, e := lookupImage(r, "id")
	if e != nil {
		return nil, e
	}
	if t.Kind != kind {
		cmd := map[string]string{fsm.ImageKindISO: "Iso", fsm.ImageKindTemplate: "Template"}[t.Kind]
		return nil, ErrParam("%s is a%s %s, not a%s %s: use the %s commands", t.ID, imageArticle(imageNoun(t.Kind)), imageNoun(t.Kind),
			imageArticle(imageNoun(kind)), imageNoun(kind), cmd)
	}
	if !r.canAccess(t.AccountID, t.DomainID) {
		return nil, ErrPermissionDenied("account " + r.Account.Name + " may not change " + imageNoun(kind) + " " + t.ID + ": it belongs to another account")
	}
	return t, nil
}

func imageArticle(noun string) string {
	if noun == "ISO" {
		return "n"
	}
	return ""
}

func updateImage(r *Request, kind, item, evType string) (any, *Error) {
	p := r.Params
	cur, e := imageForChange(r, kind)
	if e != nil {
		return nil, e
	}
	t := cur.Copy()
	if p.Has("name") {
		if t.Name, e = catalogName(p, "name"); e != nil {
			return nil, e
		}
	}
	if p.Has("displaytext") {
		if t.DisplayText, e = catalogName(p, "displaytext"); e != nil {
			return nil, e
		}
	}
	if t.OSTypeID, e = imageOSType(p, t.OSTypeID); e != nil {
		return nil, e
	}
	formats := templateFormats
	if kind == fsm.ImageKindISO {
		formats = []string{"ISO"}
	}
	if t.Format, e = catalogChoice(p, "format", t.Format, formats...); e != nil {
		return nil, e
	}
	for _, b := range []struct {
		param string
		dst   *bool
	}{
		{"passwordenabled", &t.PasswordEnabled}, {"sshkeyenabled", &t.SSHKeyEnabled},
		{"isdynamicallyscalable", &t.IsDynamicallyScalable}, {"requireshvm", &t.RequiresHVM}, {"bootable", &t.Bootable},
	} {
		if *b.dst, e = p.Bool(b.param, *b.dst); e != nil {
			return nil, e
		}
	}
	if t.SortKey, e = p.Int("sortkey", t.SortKey); e != nil {
		return nil, e
	}
	cleanup, e := p.Bool("cleanupdetails", false)
	if e != nil {
		return nil, e
	}
	if cleanup {
		t.Details = nil
	} else if d := detailsParam(p, "details"); d != nil {
		t.Details = d
	}
	if e := r.commit(fsm.Update(fsm.TableTemplates, t),
		r.event(evType, imageResource(kind), t.ID, "updated %s %s", imageNoun(kind), t.Name)); e != nil {
		return nil, e
	}
	stored, err := fsm.Get[fsm.Template](r.State(), nil, fsm.TableTemplates, t.ID)
	if err != nil || stored == nil {
		return nil, ErrInternal(imageNoun(kind) + " " + t.ID + " was committed but cannot be read back")
	}
	l, e := newImageLister(r)
	if e != nil {
		return nil, e
	}
	var c imageCopy
	if copies := l.copies(stored); len(copies) > 0 {
		c = copies[0]
	}
	return map[string]any{item: l.render(stored, c)}, nil
}

func updateTemplate(r *Request) (any, *Error) {
	return updateImage(r, fsm.ImageKindTemplate, "template", "TEMPLATE.UPDATE")
}

func updateIso(r *Request) (any, *Error) {
	return updateImage(r, fsm.ImageKindISO, "iso", "ISO.UPDATE")
}

// deleteImage removes an image's copy in zoneid, or every copy and the
// image itself (with its tags) when zoneid is absent or the copy was the
// last. CloudStack runs it as a job; the delete completes in one commit
// here and the job is recorded as done.
func deleteImage(r *Request, kind, evType string) (any, *Error) {
	p := r.Params
	t, e := imageForChange(r, kind)
	if e != nil {
		return nil, e
	}
	if _, e := p.Bool("forced", false); e != nil {
		return nil, e
	}
	copies, err := fsm.List[fsm.TemplateZone](r.State(), nil, fsm.TableTemplateZones, "template", t.ID)
	if err != nil {
		return nil, ErrInternal("template copy scan failed")
	}
	remove := copies
	desc := "deleted " + imageNoun(kind) + " " + t.Name
	if catalogGiven(p, "zoneid") {
		z, e := lookupZone(r, "zoneid")
		if e != nil {
			return nil, e
		}
		if t.CrossZones {
			return nil, ErrParam("%s %s is registered for every zone: delete it without zoneid", imageNoun(kind), t.ID)
		}
		remove = nil
		for _, c := range copies {
			if c.ZoneID == z.ID {
				remove = append(remove, c)
			}
		}
		if len(remove) == 0 {
			return nil, ErrParam("%s %s is not registered in zone %s", imageNoun(kind), t.ID, z.Name)
		}
		desc += " from zone " + z.Name
	}
	var ops []fsm.TxnOp
	for _, c := range remove {
		ops = append(ops, fsm.Delete(fsm.TableTemplateZones, c.ID))
	}
	if len(remove) == len(copies) {
		ops = append(append(ops, tagDeleteOps(r, t.ID)...), fsm.Delete(fsm.TableTemplates, t.ID))
	}
	return r.finishedJob(imageResource(kind), t.ID, successBody(), ops, evType, "%s", desc)
}

func deleteTemplate(r *Request) (any, *Error) {
	return deleteImage(r, fsm.ImageKindTemplate, "TEMPLATE.DELETE")
}
func deleteIso(r *Request) (any, *Error) { return deleteImage(r, fsm.ImageKindISO, "ISO.DELETE") }
