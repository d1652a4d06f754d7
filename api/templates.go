package api

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Templates and ISOs ("images"), owned by accounts. One row describes the
// image; one TemplateZone row per zone (or a single zone-less row for a
// cross-zone image) records its copy there and that copy's download state.
// List commands answer one item per image and zone, as CloudStack does; a
// cross-zone image is shown in every zone.
//
// Who sees what: the root admin everything; a domain admin the images of
// its domains' accounts; a user its own account's; and everyone the public
// and featured images. An image the caller may not see answers as if it
// did not exist. Only the owner, or an admin over it, changes or deletes
// an image. The download status and the URL are shown to those callers
// alone, and the URL never with the credentials it may carry.

// Template filters of listTemplates and listIsos, CloudStack's meanings:
const (
	imageFilterFeatured         = "featured"         // featured images
	imageFilterSelf             = "self"             // the caller's own (or, for admins, the scope asked for)
	imageFilterSelfExecutable   = "selfexecutable"   // self, ready to deploy
	imageFilterSharedExecutable = "sharedexecutable" // shared with the caller by other accounts, ready
	imageFilterExecutable       = "executable"       // own and public images ready to deploy
	imageFilterCommunity        = "community"        // public images that are not featured, ready
	imageFilterAll              = "all"              // everything the admin may see
)

var imageFilters = []string{imageFilterFeatured, imageFilterSelf, imageFilterSelfExecutable, imageFilterSharedExecutable, imageFilterExecutable, imageFilterCommunity, imageFilterAll}

type templateResponse struct {
	ID                    string            `json:"id"`
	Name                  string            `json:"name"`
	DisplayText           string            `json:"displaytext"`
	IsPublic              bool              `json:"ispublic"`
	IsFeatured            bool              `json:"isfeatured"`
	IsExtractable         bool              `json:"isextractable"`
	IsReady               bool              `json:"isready"`
	PasswordEnabled       bool              `json:"passwordenabled"`
	SSHKeyEnabled         bool              `json:"sshkeyenabled"`
	IsDynamicallyScalable bool              `json:"isdynamicallyscalable"`
	RequiresHVM           bool              `json:"requireshvm"`
	Bootable              bool              `json:"bootable"`
	DirectDownload        bool              `json:"directdownload"`
	DeployAsIs            bool              `json:"deployasis"`
	CrossZones            bool              `json:"crossZones"`
	Format                string            `json:"format"`
	Hypervisor            string            `json:"hypervisor,omitempty"`
	TemplateType          string            `json:"templatetype"`
	OSTypeID              string            `json:"ostypeid"`
	OSTypeName            string            `json:"ostypename,omitempty"`
	Bits                  int               `json:"bits,omitempty"`
	Checksum              string            `json:"checksum,omitempty"`
	Status                string            `json:"status,omitempty"`
	Size                  int64             `json:"size,omitempty"`
	PhysicalSize          int64             `json:"physicalsize,omitempty"`
	ZoneID                string            `json:"zoneid,omitempty"`
	ZoneName              string            `json:"zonename,omitempty"`
	Account               string            `json:"account"`
	AccountID             string            `json:"accountid"`
	Domain                string            `json:"domain"`
	DomainID              string            `json:"domainid"`
	Created               string            `json:"created"`
	TemplateTag           string            `json:"templatetag,omitempty"`
	URL                   string            `json:"url,omitempty"`
	Details               map[string]string `json:"details,omitempty"`
	Tags                  []tagResponse     `json:"tags"`
	HasAnnotations        bool              `json:"hasannotations"`
}

var templateFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Image ID."},
	ResponseField{Name: "name", Type: "string", Description: "Image name."},
	ResponseField{Name: "displaytext", Type: "string", Description: "Text shown for the image."},
	ResponseField{Name: "ispublic", Type: "boolean", Description: "Whether every account may use it."},
	ResponseField{Name: "isfeatured", Type: "boolean", Description: "Whether operators recommend it."},
	ResponseField{Name: "isextractable", Type: "boolean", Description: "Whether it may be downloaded again."},
	ResponseField{Name: "isready", Type: "boolean", Description: "Whether its copy in this zone is downloaded and usable."},
	ResponseField{Name: "passwordenabled", Type: "boolean", Description: "Whether its guests accept a password set by the cloud."},
	ResponseField{Name: "sshkeyenabled", Type: "boolean", Description: "Whether its guests accept an SSH key set by the cloud."},
	ResponseField{Name: "isdynamicallyscalable", Type: "boolean", Description: "Whether its guests can take CPUs and memory while running."},
	ResponseField{Name: "requireshvm", Type: "boolean", Description: "Whether it needs hardware virtualisation."},
	ResponseField{Name: "bootable", Type: "boolean", Description: "Whether a VM can boot from it."},
	ResponseField{Name: "directdownload", Type: "boolean", Description: "Whether hosts fetch it straight from its URL."},
	ResponseField{Name: "deployasis", Type: "boolean", Description: "Whether VMs keep the image's own hardware settings; always false here."},
	ResponseField{Name: "crossZones", Type: "boolean", Description: "Whether it is registered for every zone."},
	ResponseField{Name: "format", Type: "imageformat", Description: "Disk image format: QCOW2, RAW, VHD, VMDK or ISO."},
	ResponseField{Name: "hypervisor", Type: "string", Description: "Hypervisor the template is for."},
	ResponseField{Name: "templatetype", Type: "string", Description: "USER for images accounts register."},
	ResponseField{Name: "ostypeid", Type: "string", Description: "ID of the guest OS type."},
	ResponseField{Name: "ostypename", Type: "string", Description: "Name of that OS type."},
	ResponseField{Name: "bits", Type: "int", Description: "32 or 64."},
	ResponseField{Name: "checksum", Type: "string", Description: "Checksum the download must match."},
	ResponseField{Name: "status", Type: "string", Description: "Download status of the copy in this zone, for the owner and admins."},
	ResponseField{Name: "size", Type: "long", Description: "Virtual size in bytes, once known."},
	ResponseField{Name: "physicalsize", Type: "long", Description: "Bytes it takes on secondary storage, once known."},
	ResponseField{Name: "zoneid", Type: "string", Description: "Zone of this copy."},
	ResponseField{Name: "zonename", Type: "string", Description: "Name of that zone."},
	ResponseField{Name: "account", Type: "string", Description: "Owning account."},
	ResponseField{Name: "accountid", Type: "string", Description: "ID of the owning account."},
	ResponseField{Name: "domain", Type: "string", Description: "Domain of the owning account."},
	ResponseField{Name: "domainid", Type: "string", Description: "ID of that domain."},
	ResponseField{Name: "created", Type: "date", Description: "When it was registered."},
	ResponseField{Name: "templatetag", Type: "string", Description: "Free-form tag given at registration."},
	ResponseField{Name: "url", Type: "string", Description: "Where it is downloaded from (without credentials), for the owner and admins."},
	ResponseField{Name: "details", Type: "map", Description: "Extra key/value settings for VMs made from it."},
	ResponseField{Name: "tags", Type: "set", Description: "Tags on the image.", Response: tagFields},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on it."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "registerTemplate", Description: "Registers a disk image, downloaded from a URL, that VMs can be made from.",
				Write: true, Access: AccessUser, ObjectName: "template", Response: templateFields, Handler: registerTemplate,
				Related: "listTemplates,registerIso,listIsos",
				Params: append(imageRegisterParams(false),
					ParamSpec{Name: "format", Type: "string", Required: true, Description: "Disk image format: QCOW2, RAW, VHD or VMDK."},
					ParamSpec{Name: "hypervisor", Type: "string", Required: true, Description: "Hypervisor the template is for: KVM."},
					ParamSpec{Name: "zoneid", Type: "uuid", Related: "listZones", Description: "Zone to register it in, or -1 for every zone."},
					ParamSpec{Name: "zoneids", Type: "list", Related: "listZones", Description: "Zones to register it in, comma separated."},
					ParamSpec{Name: "bits", Type: "integer", Description: "32 or 64 (default)."},
					ParamSpec{Name: "requireshvm", Type: "boolean", Description: "Whether it needs hardware virtualisation; default true."},
					ParamSpec{Name: "sshkeyenabled", Type: "boolean", Description: "Its guests accept an SSH key set by the cloud."},
					ParamSpec{Name: "templatetag", Type: "string", Description: "Free-form tag."},
					ParamSpec{Name: "details", Type: "map", Description: "Key/value settings for VMs made from it, as details[0].key=value."},
				),
			},
			{
				Name: "listTemplates", Description: "Lists templates, one item per zone, filtered by templatefilter.",
				Access: AccessUser, ObjectName: "template", Response: templateFields, Handler: listTemplates,
				Related: "registerTemplate,updateTemplate",
				Params: append(imageListParams("templatefilter"),
					ParamSpec{Name: "ids", Type: "list", Description: "Only the templates with these IDs, comma separated."},
					ParamSpec{Name: "hypervisor", Type: "string", Description: "Only templates for this hypervisor."},
				),
			},
			{
				Name: "updateTemplate", Description: "Changes a template's name, text, OS type, format, guest features, order or details.",
				Write: true, Access: AccessUser, ObjectName: "template", Response: templateFields, Handler: updateTemplate,
				Related: "listTemplates", Params: imageUpdateParams("template"),
			},
			{
				Name: "deleteTemplate", Description: "Deletes a template from one zone, or from every zone when zoneid is absent.",
				Async: true, Write: true, Access: AccessUser, Response: successResponse, Handler: deleteTemplate,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Related: "listTemplates", Description: "ID of the template."},
					{Name: "zoneid", Type: "uuid", Related: "listZones", Description: "Only delete its copy in this zone."},
					{Name: "forced", Type: "boolean", Description: "Delete even if VMs use it (no VM keeps a template from going yet)."},
				},
			},
		}
	})
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "registerIso", Description: "Registers an ISO image, downloaded from a URL, that VMs can boot from or attach.",
				Write: true, Access: AccessUser, ObjectName: "iso", Response: templateFields, Handler: registerIso,
				Related: "listIsos,registerTemplate,listTemplates",
				Params: append(imageRegisterParams(true),
					ParamSpec{Name: "zoneid", Type: "uuid", Required: true, Related: "listZones", Description: "Zone to register it in, or -1 for every zone."},
					ParamSpec{Name: "bootable", Type: "boolean", Description: "Whether VMs can boot from it; default true."},
				),
			},
			{
				Name: "listIsos", Description: "Lists ISOs, one item per zone, filtered by isofilter (selfexecutable by default).",
				Access: AccessUser, ObjectName: "iso", Response: templateFields, Handler: listIsos, Related: "registerIso",
				Params: append(imageListParams("isofilter"),
					ParamSpec{Name: "bootable", Type: "boolean", Description: "Only ISOs that are (or are not) bootable."},
					ParamSpec{Name: "ispublic", Type: "boolean", Description: "Only ISOs that are (or are not) public."},
					ParamSpec{Name: "isready", Type: "boolean", Description: "Only copies that are (or are not) ready."},
				),
			},
			{
				Name: "updateIso", Description: "Changes an ISO's name, text, OS type, guest features, order or details.",
				Write: true, Access: AccessUser, ObjectName: "iso", Response: templateFields, Handler: updateIso,
				Related: "listIsos", Params: imageUpdateParams("ISO"),
			},
			{
				Name: "deleteIso", Description: "Deletes an ISO from one zone, or from every zone when zoneid is absent.",
				Async: true, Write: true, Access: AccessUser, Response: successResponse, Handler: deleteIso,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Related: "listIsos", Description: "ID of the ISO."},
					{Name: "zoneid", Type: "uuid", Related: "listZones", Description: "Only delete its copy in this zone."},
				},
			},
		}
	})
}

// imageRegisterParams are the parameters registerTemplate and registerIso
// share.
func imageRegisterParams(iso bool) []ParamSpec {
	noun := "template"
	if iso {
		noun = "ISO"
	}
	return []ParamSpec{
		{Name: "name", Type: "string", Required: true, Length: 255, Description: "Name of the " + noun + "."},
		{Name: "displaytext", Type: "string", Required: true, Length: 4096, Description: "Text shown for the " + noun + "."},
		{Name: "url", Type: "string", Required: true, Length: 2048, Description: "http:// or https:// address the " + noun + " is downloaded from."},
		{Name: "ostypeid", Type: "uuid", Related: "listOsTypes", Description: "Guest OS type; Other Linux (64-bit) when absent (a bootable ISO needs one)."},
		{Name: "ispublic", Type: "boolean", Description: "Let every account use it; default false."},
		{Name: "isfeatured", Type: "boolean", Description: "Recommend it to every account; root admin only."},
		{Name: "isextractable", Type: "boolean", Description: "Allow downloading it again; default false."},
		{Name: "passwordenabled", Type: "boolean", Description: "Its guests accept a password set by the cloud."},
		{Name: "isdynamicallyscalable", Type: "boolean", Description: "Its guests can take CPUs and memory while running."},
		{Name: "directdownload", Type: "boolean", Description: "Hosts fetch it straight from the URL instead of secondary storage."},
		{Name: "checksum", Type: "string", Description: "Checksum the download must match: MD5 hex, or {SHA-256}hex and the like."},
		{Name: "account", Type: "string", Description: "Register it for this account (admins); needs domainid."},
		{Name: "domainid", Type: "uuid", Related: "listDomains", Description: "Domain of that account."},
	}
}

// imageUpdateParams are the parameters of updateTemplate and updateIso.
func imageUpdateParams(noun string) []ParamSpec {
	return []ParamSpec{
		{Name: "id", Type: "uuid", Required: true, Description: "ID of the " + noun + "."},
		{Name: "name", Type: "string", Length: 255, Description: "New name."},
		{Name: "displaytext", Type: "string", Length: 4096, Description: "New display text."},
		{Name: "ostypeid", Type: "uuid", Related: "listOsTypes", Description: "New guest OS type."},
		{Name: "format", Type: "string", Description: "New disk image format."},
		{Name: "passwordenabled", Type: "boolean", Description: "Whether its guests accept a password set by the cloud."},
		{Name: "sshkeyenabled", Type: "boolean", Description: "Whether its guests accept an SSH key set by the cloud."},
		{Name: "isdynamicallyscalable", Type: "boolean", Description: "Whether its guests can take CPUs and memory while running."},
		{Name: "requireshvm", Type: "boolean", Description: "Whether it needs hardware virtualisation."},
		{Name: "bootable", Type: "boolean", Description: "Whether a VM can boot from it."},
		{Name: "sortkey", Type: "integer", Description: "Position in lists: lower comes first."},
		{Name: "details", Type: "map", Description: "Replacement key/value settings, as details[0].key=value."},
		{Name: "cleanupdetails", Type: "boolean", Description: "True removes every detail (details is then ignored)."},
	}
}

// imageListParams are the parameters listTemplates and listIsos share;
// filter names the template filter parameter.
func imageListParams(filter string) []ParamSpec {
	return withPaging(scopeParams(
		ParamSpec{Name: "id", Type: "uuid", Description: "Only the image with this ID."},
		ParamSpec{Name: "name", Type: "string", Description: "Only images with this name."},
		ParamSpec{Name: "zoneid", Type: "uuid", Related: "listZones", Description: "Only copies in this zone."},
		ParamSpec{Name: "showunique", Type: "boolean", Description: "One item per image instead of one per zone."},
		ParamSpec{Name: "tags", Type: "map", Description: "Only images with all these tags, as tags[0].key=k&tags[0].value=v."},
		ParamSpec{Name: filter, Type: "string", Required: filter == "templatefilter",
			Description: "featured, self, selfexecutable, sharedexecutable, executable, community or all (admins)."},
	)...)
}

// imageVisible reports whether the caller may see an image at all.
func (r *Request) imageVisible(t *fsm.Template) bool {
	return t.IsPublic || t.IsFeatured || r.canAccess(t.AccountID, t.DomainID)
}

// lookupImage resolves a uuid parameter to an image the caller may see,
// with CloudStack's "entity does not exist" error otherwise.
func lookupImage(r *Request, param string) (*fsm.Template, *Error) {
	return lookup(r, fsm.TableTemplates, param, r.imageVisible)
}

// imageNoun names an image's kind in messages.
func imageNoun(kind string) string {
	if kind == fsm.ImageKindISO {
		return "ISO"
	}
	return "template"
}

// imageURLRedacted drops the user name and password an image URL may carry.
func imageURLRedacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User = nil
	return u.String()
}

// imageStatus is the download status text of a copy, in CloudStack's
// words where it has them. A copy not downloaded yet, which is every copy
// until the storage work downloads them, reads "Not Downloaded".
func imageStatus(c *fsm.TemplateZone) string {
	switch c.DownloadState {
	case fsm.DownloadDownloaded:
		return "Download Complete"
	case fsm.DownloadInProgress:
		if c.DownloadPercent >= 100 {
			return "Installing Template"
		}
		return fmt.Sprintf("%d%% Downloaded", c.DownloadPercent)
	}
	if c.ErrorText != "" {
		return c.ErrorText
	}
	if c.DownloadState == fsm.DownloadError || c.DownloadState == fsm.DownloadAbandoned {
		return "Download Failed"
	}
	return "Not Downloaded"
}

// imageCopy is one item of an image list: the image's copy in one zone
// (zone is nil for a cross-zone image in a cloud without zones).
type imageCopy struct {
	row  *fsm.TemplateZone
	zone *fsm.Zone
}

// imageLister renders images for one request, caching what responses name.
type imageLister struct {
	r     *Request
	zones []*fsm.Zone
}

func newImageLister(r *Request) (*imageLister, *Error) {
	zones, err := fsm.List[fsm.Zone](r.State(), nil, catalogZonesTable, "create")
	if err != nil {
		return nil, ErrInternal("zone scan failed")
	}
	return &imageLister{r: r, zones: zones}, nil
}

func (l *imageLister) zone(id string) *fsm.Zone {
	for _, z := range l.zones {
		if z.ID == id {
			return z
		}
	}
	return nil
}

// zoneRank is a zone's position in creation order; len(zones) for none.
func (l *imageLister) zoneRank(id string) int {
	for i, z := range l.zones {
		if z.ID == id {
			return i
		}
	}
	return len(l.zones)
}

// copies returns an image's copies in the order of their zones, a
// cross-zone one once per zone.
func (l *imageLister) copies(t *fsm.Template) []imageCopy {
	rows, _ := fsm.List[fsm.TemplateZone](l.r.State(), nil, fsm.TableTemplateZones, "template", t.ID)
	sort.Slice(rows, func(i, j int) bool {
		if ri, rj := l.zoneRank(rows[i].ZoneID), l.zoneRank(rows[j].ZoneID); ri != rj {
			return ri < rj
		}
		return rows[i].ID < rows[j].ID
	})
	var out []imageCopy
	for _, row := range rows {
		if row.ZoneID != "" {
			out = append(out, imageCopy{row: row, zone: l.zone(row.ZoneID)})
			continue
		}
		for _, z := range l.zones {
			out = append(out, imageCopy{row: row, zone: z})
		}
		if len(l.zones) == 0 {
			out = append(out, imageCopy{row: row})
		}
	}
	return out
}

func (l *imageLister) tags(t *fsm.Template) []tagResponse {
	out := []tagResponse{}
	tags, _ := fsm.List[fsm.Tag](l.r.State(), nil, fsm.TableTags, "resource", t.ID)
	for _, tag := range tags {
		acct, dom := l.r.ownerNames(tag.AccountID, tag.DomainID)
		out = append(out, tagResponse{Key: tag.Key, Value: tag.Value, ResourceType: tag.ResourceType, ResourceID: tag.ResourceID,
			Account: acct, DomainID: tag.DomainID, Domain: dom, Customer: tag.Customer})
	}
	return out
}

// render is an image as the API shows it, in the zone of c (none when c's
// row is nil).
func (l *imageLister) render(t *fsm.Template, c imageCopy) templateResponse {
	r := l.r
	acct, dom := r.ownerNames(t.AccountID, t.DomainID)
	out := templateResponse{
		ID: t.ID, Name: t.Name, DisplayText: t.DisplayText, IsPublic: t.IsPublic, IsFeatured: t.IsFeatured,
		IsExtractable: t.IsExtractable, PasswordEnabled: t.PasswordEnabled, SSHKeyEnabled: t.SSHKeyEnabled,
		IsDynamicallyScalable: t.IsDynamicallyScalable, RequiresHVM: t.RequiresHVM, Bootable: t.Bootable,
		DirectDownload: t.DirectDownload, CrossZones: t.CrossZones, Format: t.Format, Hypervisor: t.Hypervisor,
		TemplateType: t.TemplateType, OSTypeID: t.OSTypeID, Bits: t.Bits, Checksum: t.Checksum,
		Account: acct, AccountID: t.AccountID, Domain: dom, DomainID: t.DomainID, Created: FormatTime(t.Created),
		TemplateTag: t.TemplateTag, Details: t.Details, Tags: l.tags(t),
	}
	if os, ok := fsm.OSTypeByID(t.OSTypeID); ok {
		out.OSTypeName = os.Description
	}
	owner := r.canAccess(t.AccountID, t.DomainID)
	if owner {
		out.URL = imageURLRedacted(t.URL)
	}
	if c.row != nil {
		out.IsReady, out.Size, out.PhysicalSize = c.row.IsReady, c.row.Size, c.row.PhysicalSize
		if owner {
			out.Status = imageStatus(c.row)
		}
	}
	if c.zone != nil {
		out.ZoneID, out.ZoneName = c.zone.ID, c.zone.Name
	}
	return out
}

// imageSelector returns, for a template filter, which images the caller
// gets and whether only copies ready to deploy count.
func imageSelector(r *Request, filter string) (func(*fsm.Template) bool, bool, *Error) {
	scope, e := r.listScope()
	if e != nil {
		return nil, false, e
	}
	owned := func(t *fsm.Template) bool { return scope(t.AccountID, t.DomainID) }
	shared := func(t *fsm.Template) bool { return t.IsPublic || t.IsFeatured }
	switch filter {
	case imageFilterFeatured:
		return func(t *fsm.Template) bool { return t.IsFeatured }, true, nil
	case imageFilterCommunity:
		return func(t *fsm.Template) bool { return t.IsPublic && !t.IsFeatured }, true, nil
	case imageFilterSelf:
		return owned, false, nil
	case imageFilterSelfExecutable:
		return owned, true, nil
	case imageFilterSharedExecutable:
		// Images shared with single accounts (launch permissions) do not
		// exist yet: nothing is shared this way.
		return func(*fsm.Template) bool { return false }, true, nil
	case imageFilterExecutable:
		return func(t *fsm.Template) bool { return owned(t) || shared(t) }, !r.isRootAdmin(), nil
	case imageFilterAll:
		if !r.isRootAdmin() && !r.isDomainAdmin() {
			return nil, false, ErrParam("templatefilter all is for admins only; use executable, self or featured")
		}
		if catalogGiven(r.Params, "account") || catalogGiven(r.Params, "domainid") {
			return owned, false, nil
		}
		return func(t *fsm.Template) bool { return r.canAccess(t.AccountID, t.DomainID) || shared(t) }, false, nil
	}
	return nil, false, ErrParam("invalid value %q for template filter: use one of %s", filter, strings.Join(imageFilters, ", "))
}

// imageTagFilter reads the tags map filter: an image must carry every
// key with its value.
func imageTagFilter(r *Request) func(*fsm.Template) bool {
	want := r.Params.Map("tags")
	if len(want) == 0 {
		return func(*fsm.Template) bool { return true }
	}
	return func(t *fsm.Template) bool {
		tags, _ := fsm.List[fsm.Tag](r.State(), nil, fsm.TableTags, "resource", t.ID)
		for _, w := range want {
			found := false
			for _, tag := range tags {
				if strings.EqualFold(tag.Key, w["key"]) && (w["value"] == "" || tag.Value == w["value"]) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
}

// listImages answers listTemplates and listIsos. extra filters images by
// the command's own parameters, keep filters copies.
func listImages(r *Request, kind, item, filterParam string, extra func(*fsm.Template) bool, keep func(imageCopy) bool) (any, *Error) {
	p := r.Params
	filter := strings.ToLower(strings.TrimSpace(p.String(filterParam)))
	if filter == "" {
		filter = imageFilterSelfExecutable
	}
	if !catalogContainsFold(imageFilters, filter) {
		return nil, ErrParam("invalid value %q for parameter %s: use one of %s", p.String(filterParam), filterParam, strings.Join(imageFilters, ", "))
	}
	selected, onlyReady, e := imageSelector(r, filter)
	if e != nil {
		return nil, e
	}
	unique, e := p.Bool("showunique", false)
	if e != nil {
		return nil, e
	}
	zoneID := strings.ToLower(p.String("zoneid"))
	if zoneID != "" {
		if z, _ := r.State().Zone(nil, zoneID); z == nil {
			return nil, ErrEntityNotFound(p.Cmd, "zoneid", p.String("zoneid"))
		}
	}
	var rows []*fsm.Template
	if catalogGiven(p, "id") {
		t, e := lookupImage(r, "id")
		if e != nil {
			return nil, e
		}
		rows = []*fsm.Template{t}
	} else {
		var err error
		if rows, err = fsm.List[fsm.Template](r.State(), nil, fsm.TableTemplates, "create"); err != nil {
			return nil, ErrInternal("template scan failed")
		}
	}
	ids := map[string]bool{}
	for _, raw := range p.List("ids") {
		t, err := fsm.Get[fsm.Template](r.State(), nil, fsm.TableTemplates, strings.ToLower(raw))
		if err != nil || t == nil || !r.imageVisible(t) {
			return nil, ErrEntityNotFound(p.Cmd, "ids", raw)
		}
		ids[t.ID] = true
	}
	catalogSortByKey(rows, func(t *fsm.Template) int { return t.SortKey })
	l, e := newImageLister(r)
	if e != nil {
		return nil, e
	}
	tagged := imageTagFilter(r)
	name, kw := p.String("name"), p.String("keyword")
	out := []templateResponse{}
	for _, t := range rows {
		if t.Kind != kind || !r.imageVisible(t) || !selected(t) || (len(ids) > 0 && !ids[t.ID]) ||
			(name != "" && !strings.EqualFold(t.Name, name)) || !catalogMatch(kw, t.Name, t.DisplayText) ||
			!extra(t) || !tagged(t) {
			continue
		}
		for _, c := range l.copies(t) {
			if (zoneID != "" && (c.zone == nil || c.zone.ID != zoneID)) || (onlyReady && !c.row.IsReady) || !keep(c) {
				continue
			}
			out = append(out, l.render(t, c))
			if unique {
				break
			}
		}
	}
	return catalogPage(r, item, out)
}

func listTemplates(r *Request) (any, *Error) {
	hv := r.Params.String("hypervisor")
	return listImages(r, fsm.ImageKindTemplate, "template", "templatefilter",
		func(t *fsm.Template) bool { return hv == "" || strings.EqualFold(t.Hypervisor, hv) },
		func(imageCopy) bool { return true })
}

func listIsos(r *Request) (any, *Error) {
	p := r.Params
	bools := map[string]bool{}
	for _, name := range []string{"bootable", "ispublic", "isready"} {
		v, e := p.Bool(name, false)
		if e != nil {
			return nil, e
		}
		if catalogGiven(p, name) {
			bools[name] = v
		}
	}
	match := func(name string, v bool) bool {
		want, set := bools[name]
		return !set || want == v
	}
	return listImages(r, fsm.ImageKindISO, "iso", "isofilter",
		func(t *fsm.Template) bool { return match("bootable", t.Bootable) && match("ispublic", t.IsPublic) },
		func(c imageCopy) bool { return match("isready", c.row.IsReady) })
}
